"""``AvatarDiT.compile_blocks``: the compiled streaming chunk step equals eager.

The inductor test generates and builds C++ kernels (about 3 minutes on the shared 2-core machine, so it is
marked slow); the aot_eager test traces the same graphs without code generation and runs in seconds.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from tests.models.dit_helpers import make_model


def _stream(model, chunks: int = 3) -> torch.Tensor:
    sampler = ChunkSampler(model, replace(model_preset("tiny").stream, ring_cache=True))
    g = torch.Generator().manual_seed(0)
    c = model.cfg
    state = sampler.start(torch.randn(1, c.latent_channels, 1, 4, 4, generator=g))
    out = []
    for _ in range(chunks):  # past the first eviction (sink 4 frames + window 3)
        a = torch.randn(1, 3, c.audio_tokens_per_frame, c.audio_dim, generator=g)
        out.append(sampler.next_chunk(state, talk_audio=a, listen_audio=a, generator=g))
    return torch.stack(out)


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_chunk_step_equals_eager(backend):
    torch._dynamo.reset()
    model = make_model()
    want = _stream(model)
    got = _stream(model.compile_blocks(backend=backend))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got[0], got[1])  # the chunks carry signal

"""Streaming decode in chunks equals the one-pass decode (fp32 exact to 1e-4; the bf16 error is reported)."""

from __future__ import annotations

import pytest
import torch


def _stream(vae, z: torch.Tensor, chunk: int) -> torch.Tensor:
    """Reference latent alone, then chunks of ``chunk`` latent frames, like the streaming pipeline."""
    dec = vae.streaming_decoder()
    outs = [dec.decode(z[:, :, :1])]
    assert outs[0].shape[2] == 1
    for s in range(1, z.shape[2], chunk):
        part = z[:, :, s:s + chunk]
        outs.append(dec.decode(part))
        assert outs[-1].shape[2] == 4 * part.shape[2]
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("family", ["tiny", "wan2.1", "wan2.2"])
def test_streaming_equals_full_decode_fp32(family, small_tiny_vae, small_wan_vae):
    vae = small_tiny_vae() if family == "tiny" else small_wan_vae(family)
    s = vae.config.spatial_stride
    g = torch.Generator().manual_seed(2)
    # 5 latent frames: the reference, then chunks [1..3] and [4] when chunk = 3 (a chunk boundary inside).
    z = torch.randn(1, vae.config.latent_channels, 5, 2, 2, generator=g)
    with torch.no_grad():
        full = vae.decode(z)
    assert full.shape == (1, 3, 1 + 4 * 4, 2 * s, 2 * s)
    assert full.std() > 1e-3  # the test is meaningless on a constant output
    for chunk in (1, 3):
        streamed = _stream(vae, z, chunk)
        err = (streamed - full).abs().max().item()
        assert err <= 1e-4, (chunk, err)


def test_streaming_first_call_may_carry_a_whole_chunk(small_tiny_vae):
    """Feeding reference + first chunk together also matches (the first frame still yields 1 video frame)."""
    vae = small_tiny_vae()
    z = torch.randn(1, 16, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    dec = vae.streaming_decoder()
    a = dec.decode(z[:, :, :4])
    assert a.shape[2] == 13
    assert (a - vae.decode(z)).abs().max() <= 1e-4
    dec.reset()
    assert (dec.decode(z[:, :, :1]) - a[:, :, :1]).abs().max() <= 1e-4


def test_streaming_bf16_error_is_small(capsys, small_tiny_vae):
    vae = small_tiny_vae()
    z = torch.randn(1, 16, 7, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = vae.decode(z)
    vae16 = small_tiny_vae().to(torch.bfloat16)
    streamed = _stream(vae16, z.to(torch.bfloat16), 3).float()
    full16 = vae16.decode(z.to(torch.bfloat16)).float()
    err_stream_vs_full = (streamed - full16).abs().max().item()
    err_vs_fp32 = (streamed - ref).abs().max().item()
    with capsys.disabled():
        print(f"\n[bf16] tiny VAE streaming vs bf16 full decode max|diff| = {err_stream_vs_full:.4g}; "
              f"vs fp32 full decode max|diff| = {err_vs_fp32:.4g} (pixels in [-1, 1])")
    assert err_stream_vs_full <= 0.05
    assert err_vs_fp32 <= 0.25

"""Device correctness: no tensor of the chunk step is created on an implied (CPU) device.

Every preset's DiT is built on the ``meta`` device (shapes only, no memory) and runs a sink prefill plus chunks
through the streaming sampler, past a cache eviction; a dispatch mode records the device of every tensor any op
produces. A CPU tensor anywhere in that trace is a tensor created on the implied device (it would be a host
tensor, and a host→device copy or a device mismatch, on a GPU).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from streamavatar.config import PRESETS, model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.models.dit import AvatarDiT


class DeviceRecorder(TorchDispatchMode):
    """Records every op whose output holds a tensor that is not on ``device``."""

    def __init__(self, device: str = "meta") -> None:
        super().__init__()
        self.device = device
        self.off_device: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in tree_leaves(out):
            if isinstance(o, torch.Tensor) and o.device.type != self.device:
                self.off_device.append(str(func))
        return out


#: Blocks built per preset: every block of a DiT runs the same code, so two of them (at the preset's own widths,
#: heads and audio shapes) show what forty would, at a twentieth of the Python overhead for the 14B preset.
META_LAYERS = 2


def _meta_model(name: str, **stream_over) -> tuple[AvatarDiT, ChunkSampler]:
    cfg = model_preset(name)
    with torch.device("meta"):
        model = AvatarDiT(replace(cfg.dit, num_layers=min(cfg.dit.num_layers, META_LAYERS))).eval()
    # A short window so that two chunks fill it and the third evicts.
    stream = replace(cfg.stream, window_frames=cfg.stream.chunk_frames * 2, **stream_over)
    return model, ChunkSampler(model, stream)


BIG = [n for n in PRESETS if not n.startswith("tiny")]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in PRESETS])
def test_chunk_step_creates_every_tensor_on_the_model_device(name):
    model, sampler = _meta_model(name)
    c = model.cfg
    ref = torch.empty(1, c.latent_channels, 1, 4, 4, device="meta")
    audio = torch.empty(1, sampler.stream.chunk_frames, c.audio_tokens_per_frame, c.audio_dim, device="meta")
    with DeviceRecorder() as rec:
        state = sampler.start(ref)
        for _ in range(3):
            out = sampler.next_chunk(state, talk_audio=audio, listen_audio=audio)
    assert state.cache.window_frames == list(range(4, 10)), "the third chunk must have evicted the first"
    assert out.device.type == "meta" and out.shape == (1, c.latent_channels, 3, 4, 4)
    assert rec.off_device == []


def test_clean_pass_and_full_sequence_modes_on_meta():
    model, sampler = _meta_model("tiny", cache_refresh="clean_pass", rapr=False)
    c = model.cfg
    x = torch.empty(1, c.latent_channels, 7, 4, 4, device="meta")
    t = torch.empty(1, 7, device="meta")
    audio = torch.empty(1, 6, c.audio_tokens_per_frame, c.audio_dim, device="meta")
    with DeviceRecorder() as rec:
        for mode in ("bidirectional", "block_causal"):
            model(x, t, talk_audio=audio, listen_audio=audio, attention=mode)
        state = sampler.start(x[:, :, :1])
        for _ in range(3):
            sampler.next_chunk(state, talk_audio=audio[:, :3], listen_audio=audio[:, :3])
    assert rec.off_device == []


def test_the_audio_windows_are_made_on_the_encoder_device():
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.audio.streaming import ChunkAudioEncoder

    frontend = AudioFrontend(AudioConfig(backend="mel")).to("meta")
    enc = ChunkAudioEncoder(frontend)
    enc.talk.push(0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    with DeviceRecorder() as rec:
        chunks = [enc.next_chunk() for _ in range(2)]
    for ca in chunks:
        for w in (ca.talk, ca.listen):
            assert {w.windows.device.type, w.slot_mask.device.type, w.video_mask.device.type} == {"meta"}
    # Host tensors only wrap the queued numpy audio (lift_fresh) and build the cached pooling/mel tables once.
    assert set(rec.off_device) <= {"aten.lift_fresh.default", "aten._to_copy.default"}


def test_dit_device_places_dit_and_audio_encoder():
    """``load(dit_device=…)``: the DiT, projector and audio encoder run there, the VAE stays on ``vae_device``;
    audio → tokens → latents of one chunk all come out on the DiT device."""
    from streamavatar.streaming.pipeline import load

    pipe = load("default", dtype="fp32", dit_device="meta", vae_device="cpu", warmup=False, numerics_check=False)
    assert pipe.frontend.device.type == "meta"
    assert {p.device.type for p in pipe.model.parameters()} == {"meta"}
    assert {p.device.type for p in pipe.vae.parameters()} == {"cpu"}
    image = np.full((pipe.resolution, pipe.resolution, 3), 128, np.uint8)
    ref = pipe.encode_reference(image)
    assert ref.device.type == "meta"
    audio = pipe.audio_stream()
    audio.talk.push(np.zeros(16000, np.float32), 16000)
    state = pipe.start(ref)
    tokens = pipe.condition(audio.next_chunk())
    latents = pipe.denoise(state, tokens, generator=None)
    assert latents.device.type == "meta"
    assert latents.shape[2] == pipe.model_config.stream.chunk_frames


def test_teacher_sampling_and_vae_sampling_on_meta():
    from streamavatar.diffusion.teacher_sampler import sample_teacher
    from streamavatar.models.vae import build_vae

    model, _ = _meta_model("tiny")
    c = model.cfg
    ref = torch.empty(1, c.latent_channels, 1, 4, 4, device="meta")
    audio = torch.empty(1, 3, c.audio_tokens_per_frame, c.audio_dim, device="meta")
    vae = build_vae("tiny", device="meta")
    with DeviceRecorder() as rec:
        out = sample_teacher(model, ref, 3, talk_audio=audio, listen_audio=None, steps=2, talk_scale=2.0)
        z = vae.encode(torch.empty(1, 3, 5, 32, 32, device="meta"), sample=True)
    assert out.device.type == "meta" and z.device.type == "meta"
    assert rec.off_device == []

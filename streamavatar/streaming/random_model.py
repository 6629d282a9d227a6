"""A small model folder with seeded random weights, in the model-folder format (:class:`AvatarModel`).

For tests and for timing the engine's plumbing without the trained weights: a 2-layer, 64-wide DiT, the mel
audio front-end (no encoder weights) and the bundled trained VAE (``tiny48``), at 64×64 by default. It produces
noise-like video; only the VAE is trained.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from streamavatar import constants as K
from streamavatar.config import DEFAULT_PRESET, DEFAULT_VAE, DiTConfig, model_preset


def random_model(*, kind: str = "student", resolution: int = 64, seed: int = 0, dim: int = 64, layers: int = 2,
                 audio_backend: str = "mel"):
    """An :class:`~streamavatar.models.avatar_model.AvatarModel` with seeded random weights (see the module
    docstring)."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.models.audio_projector import AudioProjectorConfig
    from streamavatar.models.avatar_model import AvatarModel
    from streamavatar.models.random_weights import randomize_

    base = model_preset(DEFAULT_PRESET)
    dit = DiTConfig(**{**asdict(base.dit), "dim": dim, "ffn_dim": 2 * dim, "num_heads": 2, "num_layers": layers,
                       "audio_dim": dim, "text_dim": 32, "patch_size": (1, 2, 2), "prediction": "x0"})
    mc = replace(base, name="random-small", dit=dit)
    frontend = AudioFrontend(AudioConfig(backend=audio_backend))
    pc = AudioProjectorConfig.for_dit(dit, window=frontend.window_size, num_layers=frontend.num_layers,
                                      feature_dim=frontend.feature_dim, hidden_dim=2 * dim)
    g = frontend.geometry
    sr = K.AUDIO_SAMPLE_RATE
    info = {
        "kind": kind, "resolution": resolution, "note": "random weights (streamavatar.streaming.random_model)",
        "audio": {"backend": audio_backend, "context_s": g.context / sr, "lookahead_ms": 1000 * g.lookahead / sr,
                  "window_radius": g.radius, "vad": "energy"},
        "train": {"vae": DEFAULT_VAE, "audio_backend": audio_backend},
    }
    model = AvatarModel(mc, pc, info, kind=kind)
    randomize_(model.dit, seed=seed)
    randomize_(model.projector, seed=seed + 1)
    return model


def write_random_model(folder: str | Path, *, kind: str = "student", resolution: int = 64, seed: int = 0,
                       dim: int = 64, layers: int = 2, audio_backend: str = "mel") -> Path:
    """Write ``{kind}.json`` + ``{kind}.safetensors`` (random weights) into ``folder``; returns the folder."""
    model = random_model(kind=kind, resolution=resolution, seed=seed, dim=dim, layers=layers,
                         audio_backend=audio_backend)
    return model.save_pretrained(folder)

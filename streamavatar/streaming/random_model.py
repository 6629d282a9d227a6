"""A small model folder with seeded random weights, in the teacher/student folder schema.

For tests and for timing the engine's plumbing without the trained weights: a 2-layer, 64-wide DiT, the mel
audio front-end (no encoder weights) and the bundled trained VAE (``tiny48``), at 64×64 by default. It produces
noise-like video; only the VAE is trained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from streamavatar.config import DEFAULT_PRESET, DEFAULT_VAE, DiTConfig, model_preset


def write_random_model(folder: str | Path, *, kind: str = "student", resolution: int = 64, seed: int = 0,
                       dim: int = 64, layers: int = 2, audio_backend: str = "mel") -> Path:
    """Write ``{kind}.json`` + ``{kind}.safetensors`` (random weights) into ``folder``; returns the folder."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.models.audio_projector import AudioProjectorConfig, TalkListenProjector
    from streamavatar.models.dit import AvatarDiT
    from streamavatar.models.random_weights import randomize_

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = model_preset(DEFAULT_PRESET)
    dit = DiTConfig(**{**asdict(base.dit), "dim": dim, "ffn_dim": 2 * dim, "num_heads": 2, "num_layers": layers,
                       "audio_dim": dim, "text_dim": 32, "patch_size": (1, 2, 2), "prediction": "x0"})
    mc = replace(base, name="random-small", dit=dit)
    frontend = AudioFrontend(AudioConfig(backend=audio_backend))
    pc = AudioProjectorConfig.for_dit(dit, window=frontend.window_size, num_layers=frontend.num_layers,
                                      feature_dim=frontend.feature_dim, hidden_dim=2 * dim)
    model = randomize_(AvatarDiT(dit), seed=seed)
    projector = randomize_(TalkListenProjector(pc), seed=seed + 1)
    tensors = {f"dit.{k}": v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"projector.{k}": v.to(torch.bfloat16).contiguous() for k, v in projector.state_dict().items()})
    save_file(tensors, str(folder / f"{kind}.safetensors"))
    g = frontend.geometry
    info = {
        "kind": kind, "resolution": resolution, "note": "random weights (streamavatar.streaming.random_model)",
        "model": mc.to_dict(), "projector": asdict(pc),
        "audio": {"backend": audio_backend, "context_s": g.context / 16000, "lookahead_ms": 1000 * g.lookahead / 16000,
                  "window_radius": g.radius, "vad": "energy"},
        "train": {"vae": DEFAULT_VAE, "audio_backend": audio_backend},
    }
    (folder / f"{kind}.json").write_text(json.dumps(info, indent=1))
    return folder

"""Loading and saving AvatarDiT weights: original Wan names, diffusers names, strict key checks.

Original Wan2.x checkpoints use the names :class:`~streamavatar.models.dit.AvatarDiT` uses; diffusers'
``WanTransformer3DModel`` renames them (anchors-models §15.4). :func:`wan_to_diffusers_key` and
:func:`diffusers_to_wan_key` map one to the other; keys of our new audio layers have no diffusers counterpart
and pass through unchanged. Nothing here downloads anything: checkpoints come from local paths.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from streamavatar.errors import UserInputError

#: Prefixes of parameters that StreamAvatar adds to the Wan layout (zero-initialised, absent from Wan files).
NEW_AUDIO_PREFIXES = ("talk_audio_attn.", "listen_audio_attn.")

# (our/original Wan name prefix, diffusers name prefix); a name matches a prefix if it starts with it, or
# equals it when the prefix names a whole parameter (no trailing dot).
_TOP_LEVEL = [
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("head.head.", "proj_out."),
    ("head.modulation", "scale_shift_table"),
]
# Inside ``blocks.N.``.
_BLOCK = [
    *[(f"self_attn.{x}.", f"attn1.to_{x}.") for x in "qkv"],
    ("self_attn.o.", "attn1.to_out.0."),
    *[(f"self_attn.norm_{x}.", f"attn1.norm_{x}.") for x in "qk"],
    *[(f"cross_attn.{x}.", f"attn2.to_{x}.") for x in "qkv"],
    ("cross_attn.o.", "attn2.to_out.0."),
    *[(f"cross_attn.norm_{x}.", f"attn2.norm_{x}.") for x in "qk"],
    ("norm3.", "norm2."),
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
    ("modulation", "scale_shift_table"),
]

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.*)$")


def _swap(name: str, pairs: list[tuple[str, str]], to_diffusers: bool) -> str:
    for ours, theirs in pairs:
        src, dst = (ours, theirs) if to_diffusers else (theirs, ours)
        if (src.endswith(".") and name.startswith(src)) or name == src:
            return dst + name[len(src):]
    return name


def _convert(key: str, to_diffusers: bool) -> str:
    m = _BLOCK_KEY.match(key)
    if m:
        return f"blocks.{m.group(1)}.{_swap(m.group(2), _BLOCK, to_diffusers)}"
    return _swap(key, _TOP_LEVEL, to_diffusers)


def wan_to_diffusers_key(key: str) -> str:
    """The diffusers name of an original-Wan (our) parameter name; audio keys are returned unchanged."""
    return _convert(key, to_diffusers=True)


def diffusers_to_wan_key(key: str) -> str:
    """The original-Wan (our) name of a diffusers parameter name (inverse of :func:`wan_to_diffusers_key`)."""
    return _convert(key, to_diffusers=False)


def is_diffusers_state_dict(keys: list[str] | set[str]) -> bool:
    """True if the names look like diffusers' ``WanTransformer3DModel``."""
    return any(k.startswith("condition_embedder.") or ".attn1." in k for k in keys)


def is_new_audio_key(key: str) -> bool:
    """True for parameters StreamAvatar adds for audio (absent from Wan checkpoints)."""
    if key.startswith(("talk_audio_modulation.", "listen_audio_modulation.")):
        return True
    m = _BLOCK_KEY.match(key)
    return bool(m) and m.group(2).startswith(NEW_AUDIO_PREFIXES)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (``.safetensors``, ``.pt``/``.pth``) or of a directory of safetensors shards."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"checkpoint {p} does not exist")
    if p.is_dir():
        index = next(iter(sorted(p.glob("*.safetensors.index.json"))), None)
        if index is not None:
            shard_names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files = [p / s for s in shard_names]
        else:
            files = sorted(p.glob("*.safetensors"))
        if not files:
            raise UserInputError(f"no .safetensors files in checkpoint directory {p}")
        sd: dict[str, torch.Tensor] = {}
        for f in files:
            sd.update(load_file(str(f)))
        return sd
    if p.suffix == ".safetensors":
        return load_file(str(p))
    if p.suffix in (".pt", ".pth", ".bin"):
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise UserInputError(f"{p} does not hold a state dict")
        return obj
    raise UserInputError(f"unsupported checkpoint file {p.name}: expected .safetensors, .pt, .pth or .bin")


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], allow_missing_audio: bool) -> None:
    """Raise a :class:`UserInputError` naming missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (allow_missing_audio and is_new_audio_key(k))]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
              for k in state if k in own and own[k].shape != state[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:2]}")
    if problems:
        raise UserInputError("checkpoint does not match the model: " + "; ".join(problems))


def load_dit_checkpoint(model: nn.Module, path_or_state: str | Path | dict[str, torch.Tensor],
                        allow_missing_audio: bool = True) -> nn.Module:
    """Load Wan (original or diffusers names) or our own weights into ``model`` with strict key checks.

    Only the new talk/listen audio layers may be absent (``allow_missing_audio``), since Wan files lack them;
    they keep their zero-initialised outputs, so the loaded model computes exactly what the Wan checkpoint does.
    """
    state = path_or_state if isinstance(path_or_state, dict) else read_state_dict(path_or_state)
    if is_diffusers_state_dict(list(state)):
        state = {diffusers_to_wan_key(k): v for k, v in state.items()}
    check_state_dict(model, state, allow_missing_audio)
    own = model.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return model


def save_dit_checkpoint(model: nn.Module, path: str | Path, dtype: torch.dtype | None = torch.bfloat16) -> None:
    """Write ``model``'s weights as safetensors with the original Wan names (atomically)."""
    p = Path(path)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    tmp = p.with_name(p.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(p)

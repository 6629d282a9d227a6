"""Parameter names of the original Wan VAE checkpoints (``Wan2.1_VAE.pth``, ``Wan2.2_VAE.pth``) -> diffusers.

The original modules (Wan2.1 ``wan/modules/vae.py``, Wan2.2 ``wan/modules/vae2_2.py``) name a residual block
``residual.{0,2,3,6}`` (norm, conv, norm, conv inside one ``nn.Sequential``), the middle ``middle.{0,1,2}``
(res, attention, res) and the output ``head.{0,2}``; diffusers' ``AutoencoderKLWan`` uses ``norm1/conv1/...``,
``mid_block`` and ``norm_out/conv_out``. Wan2.1 keeps all encoder/decoder stages in one flat list
(``downsamples.N``), which diffusers' own converter handles (``convert_wan_vae_to_diffusers``, used here);
Wan2.2 nests them (``downsamples.I.downsamples.J``), which this module maps itself.
"""

from __future__ import annotations

import re

#: Inside a residual block: original sequential index -> diffusers name.
_RESIDUAL = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
             "shortcut": "conv_shortcut"}
_TOP = {"conv1": "quant_conv", "conv2": "post_quant_conv"}


def _map_common(key: str) -> str | None:
    """Keys named the same way in Wan2.1 and Wan2.2 (in/out convs, middle, head, quant convs); else None."""
    if key.split(".")[0] in _TOP:
        top, rest = key.split(".", 1)
        return f"{_TOP[top]}.{rest}"
    m = re.fullmatch(r"(encoder|decoder)\.conv1\.(weight|bias)", key)
    if m:
        return f"{m[1]}.conv_in.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.head\.0\.gamma", key)
    if m:
        return f"{m[1]}.norm_out.gamma"
    m = re.fullmatch(r"(encoder|decoder)\.head\.2\.(weight|bias)", key)
    if m:
        return f"{m[1]}.conv_out.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.middle\.([012])\.(.+)", key)
    if m:
        idx = int(m[2])
        if idx == 1:
            return f"{m[1]}.mid_block.attentions.0.{m[3]}"
        return f"{m[1]}.mid_block.resnets.{idx // 2}.{_residual(m[3])}"
    return None


def _residual(rest: str) -> str:
    for old, new in _RESIDUAL.items():
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    raise KeyError(rest)


def wan22_to_diffusers(key: str, num_res_blocks: int = 2) -> str:
    """Map one original Wan2.2 VAE key to its ``AutoencoderKLWan(is_residual=True)`` name."""
    common = _map_common(key)
    if common is not None:
        return common
    m = re.fullmatch(r"encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.(.+)", key)
    if m:
        block, j, rest = m[1], int(m[2]), m[3]
        if j < num_res_blocks:
            return f"encoder.down_blocks.{block}.resnets.{j}.{_residual(rest)}"
        return f"encoder.down_blocks.{block}.downsampler.{rest}"
    m = re.fullmatch(r"decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.(.+)", key)
    if m:
        block, j, rest = m[1], int(m[2]), m[3]
        if j < num_res_blocks + 1:
            return f"decoder.up_blocks.{block}.resnets.{j}.{_residual(rest)}"
        return f"decoder.up_blocks.{block}.upsampler.{rest}"
    raise KeyError(f"not a Wan2.2 VAE parameter name: {key}")


def wan21_to_diffusers(state: dict) -> dict:
    """Rename a whole original Wan2.1 VAE state dict with diffusers' own converter (values untouched)."""
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    return convert_wan_vae_to_diffusers(state)


def original_to_diffusers(state: dict, family: str) -> dict:
    """Rename an original Wan VAE state dict (``family`` is ``"wan2.1"`` or ``"wan2.2"``) to diffusers names."""
    if family == "wan2.1":
        return wan21_to_diffusers(state)
    if family == "wan2.2":
        return {wan22_to_diffusers(k): v for k, v in state.items()}
    raise ValueError(f"unknown Wan VAE family {family!r}; expected 'wan2.1' or 'wan2.2'")


def is_original_naming(keys) -> bool:
    """True for original Wan checkpoints, False for diffusers-format ones."""
    keys = set(keys)
    return "decoder.middle.0.residual.0.gamma" in keys or "decoder.conv1.weight" in keys

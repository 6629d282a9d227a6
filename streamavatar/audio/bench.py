"""Speed of the audio front-end: milliseconds per 0.48 s chunk for each backend, streaming as in a session."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.audio.config import BACKENDS, AudioConfig
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.io import ENCODER_SAMPLE_RATE
from streamavatar.audio.streaming import ChunkAudioEncoder
from streamavatar.errors import UserInputError


def synthetic_voice(seconds: float, sample_rate: int = ENCODER_SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A voice-like test signal: harmonic tones with a wobbling pitch and a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(h * phase) / h for h in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return (0.2 * tone * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def random_wav2vec2_base_dir(seed: int = 0) -> str:
    """A base-size Wav2Vec2Model with random weights saved to a temporary directory (timing only)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    path = tempfile.mkdtemp(prefix="w2v2-base-random-")
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(path)
    return path


def bench_backend(cfg: AudioConfig, seconds: float, push_s: float = 0.02, progress: bool = False) -> dict:
    """Stream ``seconds`` of agent audio through one backend the way a session does (the listening voice is
    silent); per-chunk milliseconds of ``next_chunk()`` (encode + windows) once a chunk and its look-ahead are
    queued."""
    frontend = AudioFrontend(cfg)
    stream = ChunkAudioEncoder(frontend, listen_backlog_s=None)
    audio = synthetic_voice(seconds)
    step = max(1, round(push_s * ENCODER_SAMPLE_RATE))
    warm = AudioFrontend(cfg, frontend.encoder)  # one untimed chunk so lazy initialisation is not timed
    warm.encode(audio[: ENCODER_SAMPLE_RATE], ENCODER_SAMPLE_RATE, num_latent_frames=cfg.chunk_latent_frames)
    times = []
    bar = tqdm(total=len(audio), unit="sample", disable=not progress, desc=cfg.backend, leave=False)
    for i in range(0, len(audio), step):
        stream.talk.push(audio[i: i + step], ENCODER_SAMPLE_RATE)
        bar.update(min(step, len(audio) - i))
        while stream.talk.ready():
            t0 = time.perf_counter()
            stream.next_chunk()
            times.append(1000.0 * (time.perf_counter() - t0))
    bar.close()
    chunk_ms = 1000.0 * K.CHUNK_SECONDS
    return {
        **frontend.describe(),
        "chunks": len(times),
        "ms_per_chunk": {"mean": round(statistics.fmean(times), 2), "p50": round(statistics.median(times), 2),
                         "p95": round(float(np.percentile(times, 95)), 2)},
        "chunk_ms": chunk_ms,
        "realtime_fraction": round(statistics.fmean(times) / chunk_ms, 4),
        "threads": torch.get_num_threads(),
        "dtype": cfg.dtype,
    }


def run_audio_benchmark(backends: list[str], seconds: float, *, wav2vec2_dir: str | None = None,
                        cache_dir: str | None = None, dtype: str = "float32", progress: bool = False) -> dict:
    """``{backend: result}`` for each backend; wav2vec2 without a directory uses random base-size weights."""
    if not np.isfinite(seconds) or seconds <= 0:
        raise UserInputError(f"--seconds must be a positive number, got {seconds}")
    need = AudioFrontend.first_chunk_seconds(AudioConfig())
    if seconds < need:
        raise UserInputError(f"--seconds must be at least {need:g} (one 0.48 s chunk plus frame 0 and the "
                             f"look-ahead), got {seconds}")
    results = {}
    for name in backends:
        if name not in BACKENDS:
            raise UserInputError(f"unknown audio backend {name!r}; expected one of {list(BACKENDS)}")
        note, directory, scratch = None, wav2vec2_dir, None
        if name == "wav2vec2" and directory is None:
            directory = scratch = random_wav2vec2_base_dir()
            note = "wav2vec2-base geometry with random weights (timing only)"
        try:
            cfg = replace(AudioConfig(), backend=name, wav2vec2_dir=directory, cache_dir=cache_dir, dtype=dtype)
            res = bench_backend(cfg, seconds, progress=progress)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        if note:
            res["note"] = note
        results[name] = res
    return results

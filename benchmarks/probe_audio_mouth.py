"""Linear probe: how much of the ground-truth mouth opening each audio backend's features carry.

For every clip of the synthetic corpus (issue #3, ``FORMAT.md``) the agent voice ``talk.wav`` goes through the
audio front-end exactly as in training/inference (chunked encoder windows, 80 ms look-ahead) with the VAD off
(``vad="none"``: the probe measures the encoder, not the mask). Each video frame's feature is its own slot of
its latent frame's window (all hidden states concatenated). A ridge regression is fitted on the train
identities, its strength chosen on the validation identities, and Pearson r against ``mouth_open`` is reported
on the test identities, whose voices the probe never saw (splits are disjoint by identity).

    PYTHONPATH=. python benchmarks/probe_audio_mouth.py --corpus /work/data/corpus --json runs/probe_audio.json

Reported per backend: ``r_all`` (all test frames), ``r_talking`` (test frames inside agent turns), the same for
the best single hidden state, and a one-number reference: the frame's RMS energy in dB fitted the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from streamavatar.audio.config import AudioConfig
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.windows import latent_frames_for_video_frames
from streamavatar.errors import UserInputError

ALPHAS = (1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)


def read_split(corpus: Path, split: str, limit: int | None) -> list[Path]:
    f = corpus / f"{split}.txt"
    if not f.is_file():
        raise UserInputError(f"{f} not found; expected a corpus made by `streamavatar data synth` (FORMAT.md)")
    clips = [corpus / line.strip() for line in f.read_text().splitlines() if line.strip()]
    return clips[:limit] if limit else clips


def clip_features(frontend: AudioFrontend, clip: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-video-frame features ``[T-1, L, D]`` for frames 1…T−1, their mouth_open, talk mask and RMS dB."""
    pcm, rate = sf.read(str(clip / "talk.wav"), dtype="int16")
    ann = np.load(clip / "annotations.npz")
    n = len(ann["mouth_open"])
    f = latent_frames_for_video_frames(n)
    w = frontend.encode(pcm, rate, num_latent_frames=f)
    r = frontend.geometry.radius
    own = w.windows[:, r: r + 4]  # [F, 4, L, D]: each latent frame's own video frames
    feats = own.reshape(-1, *own.shape[2:])[: n - 1].numpy()
    x = pcm.astype(np.float64) / 32768.0
    frames = x[: n * 640].reshape(n, 640)
    rms_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    return feats, ann["mouth_open"][1:], ann["talk_mask"][1:].astype(bool), rms_db[1:, None]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))


def ridge_probe(xtr, ytr, xva, yva, xte, yte, talk_te) -> dict:
    """Standardise, pick the ridge strength on validation r, refit on train+val, report test r."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6

    def fit(x, y, alpha):
        z = (x - mu) / sd
        zm, ym = z.mean(0), y.mean()
        zc = z - zm
        w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ (y - ym))
        return lambda q: ((q - mu) / sd - zm) @ w + ym

    best = max(ALPHAS, key=lambda a: pearson(fit(xtr, ytr, a)(xva), yva))
    pred = fit(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]), best)(xte)
    return {"r_all": round(pearson(pred, yte), 4), "r_talking": round(pearson(pred[talk_te], yte[talk_te]), 4),
            "alpha": best}


def probe_backend(cfg: AudioConfig, splits: dict[str, list[Path]], progress: bool) -> dict:
    t0 = time.perf_counter()
    fe = AudioFrontend(cfg)
    data = {}
    for split, clips in splits.items():
        parts = [clip_features(fe, c) for c in tqdm(clips, desc=f"{cfg.backend} {split}", disable=not progress)]
        data[split] = [np.concatenate(p) for p in zip(*parts, strict=True)]
    encode_s = time.perf_counter() - t0
    (ftr, ytr, _, etr), (fva, yva, _, eva), (fte, yte, tte, ete) = data["train"], data["val"], data["test"]
    flat = [f.reshape(len(f), -1).astype(np.float64) for f in (ftr, fva, fte)]
    result = {"backend": cfg.backend, **fe.describe(), **ridge_probe(flat[0], ytr, flat[1], yva, flat[2], yte, tte)}
    per_layer = []
    for layer in range(ftr.shape[1]):
        sub = [f[:, layer].astype(np.float64) for f in (ftr, fva, fte)]
        per_layer.append(ridge_probe(sub[0], ytr, sub[1], yva, sub[2], yte, tte))
    best = int(np.argmax([p["r_all"] for p in per_layer]))
    result.update({"best_layer": best, "best_layer_r_all": per_layer[best]["r_all"],
                   "best_layer_r_talking": per_layer[best]["r_talking"],
                   "per_layer_r_all": [p["r_all"] for p in per_layer],
                   "energy_reference": ridge_probe(etr, ytr, eva, yva, ete, yte, tte),
                   "frames": {"train": len(ytr), "val": len(yva), "test": len(yte)},
                   "encode_seconds": round(encode_s, 1)})
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="/work/data/corpus")
    p.add_argument("--backend", action="append", choices=["whisper-tiny", "mel", "wav2vec2"],
                   help="repeatable; default: whisper-tiny and mel (wav2vec2 needs --wav2vec2-dir)")
    p.add_argument("--wav2vec2-dir", default=None, help="local Wav2Vec2Model directory for the wav2vec2 backend")
    p.add_argument("--context-s", type=float, default=None, help="encoder context per chunk (default: config)")
    p.add_argument("--lookahead-ms", type=float, default=None, help="look-ahead past each chunk (default: config)")
    p.add_argument("--window-radius", type=int, default=None, help="video frames of context each side (default 2)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--max-clips", type=int, default=None, help="use at most this many clips per split")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results here as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = Path(args.corpus)
    if not (corpus / "READY").exists():
        print(f"corpus {corpus} is not ready (no READY file)", file=sys.stderr)
        return 2
    splits = {s: read_split(corpus, s, args.max_clips) for s in ("train", "val", "test")}
    results = []
    for backend in args.backend or ["whisper-tiny", "mel"]:
        cfg = replace(AudioConfig(), backend=backend, vad="none", cache_dir=args.cache_dir,
                      wav2vec2_dir=args.wav2vec2_dir)
        overrides = {f: getattr(args, f) for f in ("context_s", "lookahead_ms", "window_radius")
                     if getattr(args, f) is not None}
        cfg = replace(cfg, **overrides)
        res = probe_backend(cfg, splits, progress=sys.stderr.isatty())
        results.append(res)
        print(f"{backend:>13} (context {res['context_s']:g} s, look-ahead {res['lookahead_ms']:g} ms): "
              f"r_all {res['r_all']:.3f}  r_talking "
              f"{res['r_talking']:.3f}  | best layer {res['best_layer']}: {res['best_layer_r_all']:.3f} / "
              f"{res['best_layer_r_talking']:.3f}  | energy reference {res['energy_reference']['r_all']:.3f} / "
              f"{res['energy_reference']['r_talking']:.3f}  ({res['encode_seconds']:.0f} s)", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

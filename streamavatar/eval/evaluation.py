"""``streamavatar eval``: score a folder of generated clips against the corpus clips they were generated from.

Input convention (docs/evaluation.md): ``GENERATED/<clip_id>.mp4`` was generated from corpus clip ``<clip_id>``:
its reference image is frame 0 of ``CORPUS/clips/<clip_id>/video.mp4`` and its driving audio is that clip's
``talk.wav`` (avatar voice) and ``listen.wav`` (user voice), frame ``t`` aligned with samples ``[t*640, (t+1)*640)``.
A generated clip may be shorter or longer than the ground truth: lip sync and listening use the frames both
cover, drift uses every generated frame.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from streamavatar.data.video_io import read_frames
from streamavatar.errors import UserInputError
from streamavatar.eval.audio_features import log_mel
from streamavatar.eval.blockiness import blockiness_by_grid
from streamavatar.eval.corpus_clip import CorpusClip, load_corpus_clip
from streamavatar.eval.distribution import fid_proxy, fvd_proxy
from streamavatar.eval.drift import background_error, identity_distance, static_background, summarise_series
from streamavatar.eval.judge import Judge, run_judge
from streamavatar.eval.lip_sync import mouth_agreement
from streamavatar.eval.listening import listening_frames, listening_motion
from streamavatar.eval.mouth_crop import mouth_maps
from streamavatar.eval.mouth_measure import MouthColours, measure_clip_mouth
from streamavatar.eval.syncnet import SyncNet, embed_clip, sync_score


@dataclass
class ClipEvaluation:
    """Metrics of one generated clip plus the per-frame series the plots need."""

    clip_id: str
    metrics: dict
    mouth_generated: np.ndarray
    mouth_reference: np.ndarray
    identity_distance: np.ndarray
    background_error: np.ndarray
    gen_features: np.ndarray = field(repr=False)
    ref_features: np.ndarray = field(repr=False)


def find_generated(folder: str | Path) -> list[tuple[str, Path]]:
    """``(clip_id, path)`` of every ``<clip_id>.mp4`` in ``folder`` (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"GENERATED must be a folder of <clip_id>.mp4 files, got {folder}")
    found = sorted((p.stem, p) for p in folder.glob("*.mp4"))
    if not found:
        raise UserInputError(f"no <clip_id>.mp4 files in {folder} (expected e.g. {folder}/clip_00008.mp4)")
    return found


def read_generated(path: Path, size: int) -> np.ndarray:
    """Decode a generated mp4 and resize its frames to the corpus resolution (box filter = pixel-area average)."""
    try:
        frames = read_frames(path)
    except Exception as exc:  # PyAV raises many error types for broken files
        raise UserInputError(f"cannot decode generated video {path}: {exc}") from exc
    if frames.shape[1:3] != (size, size):
        frames = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BOX)) for f in frames])
    return frames


def _mouth_series(frames: np.ndarray, clip: CorpusClip):
    return measure_clip_mouth(frames, clip.meta, clip.annotations)


def _sync(model: SyncNet, frames: np.ndarray, clip: CorpusClip, measurement, n: int) -> dict:
    idx = np.minimum(np.arange(n), clip.n_frames - 1)
    maps = mouth_maps(frames[:n], MouthColours.from_meta(clip.meta), measurement, clip.annotations["face_box"][idx])
    audio, sr = clip.talk_audio()
    v, a = embed_clip(model, maps, log_mel(audio, n, sr))
    s = sync_score(v, a, clip.annotations["talk_mask"][:len(v)])
    return {"offset": s.offset, "confidence": s.confidence, "min_distance": s.min_distance,
            "distance_at_zero": s.distance_at_zero}


def evaluate_clip(clip: CorpusClip, generated: np.ndarray, judge: Judge, syncnet: SyncNet,
                  reference_frames: np.ndarray | None = None) -> ClipEvaluation:
    """All per-clip metrics of ``generated`` (uint8 ``[T, H, W, 3]`` at corpus resolution) against ``clip``."""
    gt = clip.frames() if reference_frames is None else reference_frames
    n = min(len(generated), clip.n_frames, len(gt))
    if n < 2:
        raise UserInputError(f"generated clip for {clip.clip_id} has {len(generated)} frames; need at least 2")
    m_gen = _mouth_series(generated, clip)
    m_gt = _mouth_series(gt, clip)
    ann = clip.annotations
    j_gen = run_judge(judge, generated)
    j_gt = run_judge(judge, gt)
    listen = listening_frames(ann["state"])[:n]
    ref_id = j_gt.identity[0]
    bg = static_background(gt)
    id_gen = identity_distance(j_gen.identity, ref_id)
    bg_gen = background_error(generated, bg)
    metrics = {
        "frames_generated": int(len(generated)), "frames_compared": int(n),
        "lip_sync": {
            "vs_ground_truth_video": mouth_agreement(m_gen.open[:n], m_gt.open[:n]),
            "vs_annotation": mouth_agreement(m_gen.open[:n], ann["mouth_open"][:n]),
            "judge_vs_annotation": mouth_agreement(j_gen.params["mouth_open"][:n], ann["mouth_open"][:n]),
            # sync offsets are only defined where the avatar speaks
            "syncnet": _sync(syncnet, generated, clip, m_gen, n) if ann["talk_mask"][:n].sum() >= 5 else None,
        },
        "listening": {"generated": listening_motion({k: v[:n] for k, v in j_gen.params.items()}, listen),
                      "ground_truth": listening_motion({k: v[:n] for k, v in j_gt.params.items()}, listen)},
        "drift": {"identity_distance": summarise_series(id_gen, clip.fps),
                  "background_error": summarise_series(bg_gen, clip.fps),
                  "ground_truth_identity_distance": float(identity_distance(j_gt.identity, ref_id).mean()),
                  "static_pixels": int(bg.mask.sum())},
        # At corpus resolution; 8 and 16 px grids = one VAE latent cell and one DiT token (2x2 cells) at 128².
        "blockiness": {"generated": blockiness_by_grid(generated), "ground_truth": blockiness_by_grid(gt[:n])},
    }
    return ClipEvaluation(clip.clip_id, metrics, m_gen.open[:n], m_gt.open[:n], id_gen, bg_gen,
                          j_gen.features, j_gt.features)


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summarise(clips: list[ClipEvaluation], baseline: dict[str, dict] | None, speed: dict | None) -> dict:
    """Averages over clips (the numbers of the markdown table)."""
    def pick(path: list[str]) -> list:
        out = []
        for c in clips:
            v = c.metrics
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            out.append(v)
        return out

    s: dict = {"clips": len(clips)}
    s["mouth_r"] = _mean(pick(["lip_sync", "vs_ground_truth_video", "r"]))
    s["mouth_mae"] = _mean(pick(["lip_sync", "vs_ground_truth_video", "mae"]))
    s["mouth_r_vs_annotation"] = _mean(pick(["lip_sync", "vs_annotation", "r"]))
    s["mouth_mae_vs_annotation"] = _mean(pick(["lip_sync", "vs_annotation", "mae"]))
    s["judge_mouth_r_vs_annotation"] = _mean(pick(["lip_sync", "judge_vs_annotation", "r"]))
    offsets = [o for o in pick(["lip_sync", "syncnet", "offset"]) if o is not None]
    s["sync_offset_mean_abs"] = _mean([abs(o) for o in offsets])
    s["sync_in_sync_fraction"] = _mean([float(abs(o) <= 1) for o in offsets])
    s["sync_confidence"] = _mean(pick(["lip_sync", "syncnet", "confidence"]))
    for who in ("generated", "ground_truth"):
        s[f"listen_head_var_deg2_{who}"] = _mean(pick(["listening", who, "head_var_deg2"]))
        s[f"listen_arm_var_deg2_{who}"] = _mean(pick(["listening", who, "arm_var_deg2"]))
    if baseline:
        s["listen_head_var_deg2_baseline"] = _mean([b["head_var_deg2"] for b in baseline.values()])
        s["listen_arm_var_deg2_baseline"] = _mean([b["arm_var_deg2"] for b in baseline.values()])
    s["identity_distance"] = _mean(pick(["drift", "identity_distance", "mean"]))
    s["identity_distance_ground_truth"] = _mean(pick(["drift", "ground_truth_identity_distance"]))
    s["identity_slope_per_minute"] = _mean(pick(["drift", "identity_distance", "slope_per_minute"]))
    s["background_error"] = _mean(pick(["drift", "background_error", "mean"]))
    s["background_slope_per_minute"] = _mean(pick(["drift", "background_error", "slope_per_minute"]))
    for grid in ("8", "16"):
        s[f"blockiness_{grid}"] = _mean(pick(["blockiness", "generated", grid]))
        s[f"blockiness_{grid}_ground_truth"] = _mean(pick(["blockiness", "ground_truth", grid]))
    s["fid_proxy"] = fid_proxy([c.gen_features for c in clips], [c.ref_features for c in clips]) \
        if sum(len(c.gen_features) for c in clips) >= 2 else None
    s["fvd_proxy"] = fvd_proxy([c.gen_features for c in clips], [c.ref_features for c in clips])
    if speed:
        s["rtf"] = speed.get("rtf")
        s["ffd_s"] = speed.get("ffd_s")
    return s


def evaluate_folder(generated: str | Path, corpus: str | Path, judge: Judge, syncnet: SyncNet,
                    baseline: str | Path | None = None, speed: dict | None = None,
                    progress: bool = True) -> tuple[dict, list[ClipEvaluation]]:
    """Evaluate every ``GENERATED/<clip_id>.mp4``; returns the JSON-able result and the per-clip evaluations."""
    items = find_generated(generated)
    base_items = dict(find_generated(baseline)) if baseline is not None else {}
    clips: list[ClipEvaluation] = []
    base: dict[str, dict] = {}
    for clip_id, path in tqdm(items, desc="eval clips", unit="clip", file=sys.stderr, disable=not progress):
        clip = load_corpus_clip(corpus, clip_id)
        gt = clip.frames()
        frames = read_generated(path, gt.shape[1])
        ev = evaluate_clip(clip, frames, judge, syncnet, gt)
        if clip_id in base_items:
            bf = read_generated(base_items[clip_id], gt.shape[1])
            n = min(len(bf), clip.n_frames)
            jb = run_judge(judge, bf[:n])
            base[clip_id] = listening_motion(jb.params, listening_frames(clip.annotations["state"])[:n])
            ev.metrics["listening"]["baseline"] = base[clip_id]
        clips.append(ev)
    result = {"generated": str(generated), "corpus": str(corpus), "baseline": str(baseline) if baseline else None,
              "summary": summarise(clips, base or None, speed), "speed": speed,
              "clips": {c.clip_id: c.metrics for c in clips}}
    return result, clips

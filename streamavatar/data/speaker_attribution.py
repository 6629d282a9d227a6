"""Who is speaking in a mixed audio track: the person on screen (the avatar) or the off-screen partner.

Active-speaker detection per voiced segment: voice activity (energy VAD, one decision per 25 fps frame) cuts
the mixed track into segments; each segment is given to the visible person when their mouth moves during it
and moves with the voice, else to the partner. The two cues, both from face landmarks:

* **motion**: the standard deviation of the mouth-opening ratio (inner-lip gap / face height) over the
  segment; a talking mouth moves by several hundredths of the face height, a listening one by less than one;
* **coupling**: the Pearson correlation of the opening with the voice's energy envelope inside the segment.

``p(avatar) = sigmoid(MOTION_GAIN * log(motion / MOTION_THRESHOLD) + COUPLING_GAIN * r)``; the confidence is
``|2 p - 1|`` (0 = a coin toss, 1 = certain). Segments where the face is not tracked go to the partner with
confidence 0. A manual override file (``<stem>.speakers.json``) replaces the decision wherever it says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from streamavatar.audio.vad import vad_mask
from streamavatar.errors import UserInputError

#: mouth-opening-ratio standard deviation that is even odds of talking (at zero-centred coupling)
MOTION_THRESHOLD = 0.008
MOTION_GAIN = 2.0
#: correlation of the opening with the voice energy (best over a mouth lag of 0..COUPLING_MAX_LAG frames)
COUPLING_GAIN = 4.0
COUPLING_CENTRE = 0.25
COUPLING_MAX_LAG = 3
#: long voiced runs are scored in windows of WINDOW frames every WINDOW_HOP; label runs shorter than MIN_PART
#: frames join their neighbour
WINDOW = 25
WINDOW_HOP = 5
MIN_PART = 12
#: voiced runs closer than this many frames are one segment; shorter segments than MIN_SEGMENT join neighbours
MERGE_GAP = 5
MIN_SEGMENT = 3
SPEAKERS = ("avatar", "partner")


@dataclass(frozen=True)
class Segment:
    """One voiced stretch ``[start, end)`` in 25 fps frames and who it was given to."""

    start: int
    end: int
    speaker: str          # "avatar" or "partner"
    p_avatar: float
    confidence: float
    motion: float         # std of the mouth-opening ratio in the segment
    coupling: float       # r(opening, energy) in the segment (0 when undefined)
    source: str = "auto"  # "auto" or "override"


def voiced_segments(voiced: np.ndarray, merge_gap: int = MERGE_GAP,
                    min_len: int = MIN_SEGMENT) -> list[tuple[int, int]]:
    """Runs of true frames, merging runs separated by fewer than ``merge_gap`` frames, dropping short ones."""
    v = np.asarray(voiced, bool)
    runs: list[list[int]] = []
    t = 0
    while t < len(v):
        if v[t]:
            s = t
            while t < len(v) and v[t]:
                t += 1
            if runs and s - runs[-1][1] < merge_gap:
                runs[-1][1] = t
            else:
                runs.append([s, t])
        else:
            t += 1
    return [(a, b) for a, b in runs if b - a >= min_len]


def frame_energy(audio16k: np.ndarray, n_frames: int, hop: int = 640) -> np.ndarray:
    """RMS of each 25 fps frame's 640 samples (zero past the end of the audio)."""
    out = np.zeros(n_frames, np.float32)
    m = min(n_frames, len(audio16k) // hop)
    if m:
        out[:m] = np.sqrt(np.mean(np.square(audio16k[:m * hop].reshape(m, hop).astype(np.float64)), 1))
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _coupling(r: np.ndarray, e: np.ndarray, max_lag: int = COUPLING_MAX_LAG) -> float:
    """Best correlation of the opening with the energy when the mouth lags the voice by 0..max_lag frames."""
    best = _corr(r, e)
    for lag in range(1, max_lag + 1):
        if len(r) - lag >= 3:
            best = max(best, _corr(r[lag:], e[:-lag]))
    return best


def classify_segment(ratio: np.ndarray, valid: np.ndarray, energy: np.ndarray) -> tuple[float, float, float]:
    """``(p_avatar, motion, coupling)`` of one segment's mouth ratios, tracked-face mask and frame energies."""
    ok = np.asarray(valid, bool)
    if ok.sum() < 3:
        return 0.0, 0.0, 0.0
    r, e = np.asarray(ratio, np.float64), np.sqrt(np.asarray(energy, np.float64))
    r = np.interp(np.arange(len(r)), np.flatnonzero(ok), r[ok]) if not ok.all() else r
    motion = float(np.std(r[ok]))
    coupling = _coupling(r, e)
    z = MOTION_GAIN * np.log(max(motion, 1e-6) / MOTION_THRESHOLD) + COUPLING_GAIN * (coupling - COUPLING_CENTRE)
    return float(1 / (1 + np.exp(-z))), motion, coupling


def split_run(ratio: np.ndarray, valid: np.ndarray, energy: np.ndarray, a: int, b: int) -> list[tuple[int, int, float]]:
    """``[(start, end, p_avatar)]`` of one voiced run: runs longer than ``2 * WINDOW`` frames are scored in
    overlapping windows so that a change of speaker inside a run (turns with short pauses) splits it; label runs
    shorter than ``MIN_PART`` frames join their neighbour."""
    if b - a <= 2 * WINDOW:
        return [(a, b, classify_segment(ratio[a:b], valid[a:b], energy[a:b])[0])]
    acc, cnt = np.zeros(b - a), np.zeros(b - a)
    starts = list(range(a, b - WINDOW + 1, WINDOW_HOP))
    if starts[-1] != b - WINDOW:
        starts.append(b - WINDOW)
    for s in starts:
        p = classify_segment(ratio[s:s + WINDOW], valid[s:s + WINDOW], energy[s:s + WINDOW])[0]
        acc[s - a:s - a + WINDOW] += p
        cnt[s - a:s - a + WINDOW] += 1
    p = acc / np.maximum(cnt, 1)
    label = p >= 0.5
    parts: list[list[int]] = []
    t = 0
    while t < len(label):
        u = t
        while u < len(label) and label[u] == label[t]:
            u += 1
        if parts and (u - t < MIN_PART):
            parts[-1][1] = u
        else:
            parts.append([t, u])
        t = u
    if len(parts) > 1 and parts[0][1] - parts[0][0] < MIN_PART:
        parts[1][0] = parts[0][0]
        parts.pop(0)
    return [(a + x, a + y, float(p[x:y].mean())) for x, y in parts]


def load_override(path: Path, fps: int) -> list[tuple[int, int, str]]:
    """``[(start_frame, end_frame, speaker)]`` from ``{"segments": [{"start_s", "end_s", "speaker"}]}``."""
    try:
        data = json.loads(path.read_text())
        out = []
        for s in data["segments"]:
            who = s["speaker"]
            if who not in SPEAKERS:
                raise ValueError(f"speaker must be one of {SPEAKERS}, got {who!r}")
            a, b = int(round(float(s["start_s"]) * fps)), int(round(float(s["end_s"]) * fps))
            if b <= a:
                raise ValueError(f"end_s must be after start_s in {s}")
            out.append((a, b, who))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"bad speaker override file {path}: {exc}") from exc


@dataclass
class Attribution:
    """Per-frame masks of a mixed track plus the per-segment decisions."""

    talk_mask: np.ndarray        # [T] bool: the visible person speaks
    listen_mask: np.ndarray      # [T] bool: the partner speaks
    confidence: np.ndarray       # [T] float32, 1 outside voiced frames
    segments: list[Segment]

    def to_json(self) -> list[dict]:
        """The segments as JSON-able dicts (frames and seconds)."""
        return [{**asdict(s), "start_s": s.start / 25.0, "end_s": s.end / 25.0} for s in self.segments]


def attribute_speakers(audio16k: np.ndarray, ratio: np.ndarray, valid: np.ndarray,
                       override: list[tuple[int, int, str]] | None = None, vad: str = "energy") -> Attribution:
    """Split the voiced frames of a mixed track between the visible person and the partner.

    ``ratio`` is the per-frame mouth-opening ratio (:func:`streamavatar.data.face_track.mouth_ratio`) and
    ``valid`` whether the face was tracked in that frame; all three series are on the same 25 fps grid."""
    n = len(ratio)
    voiced = np.zeros(n, bool)
    vm = vad_mask(np.asarray(audio16k, np.float32), vad)[:n]
    voiced[:len(vm)] = vm
    energy = frame_energy(audio16k, n)
    talk, listen = np.zeros(n, bool), np.zeros(n, bool)
    conf = np.ones(n, np.float32)
    segments = []
    parts = [part for a, b in voiced_segments(voiced) for part in split_run(ratio, valid, energy, a, b)]
    for a, b, p in parts:
        _, motion, coupling = classify_segment(ratio[a:b], valid[a:b], energy[a:b])
        who = "avatar" if p >= 0.5 else "partner"
        c = abs(2 * p - 1) if valid[a:b].sum() >= 3 else 0.0
        segments.append(Segment(a, b, who, round(p, 4), round(c, 4), round(motion, 5), round(coupling, 4)))
        (talk if who == "avatar" else listen)[a:b] = True
        conf[a:b] = c
    for a, b, who in override or []:
        a, b = max(a, 0), min(b, n)
        if b <= a:
            continue
        talk[a:b] = who == "avatar"
        listen[a:b] = who == "partner"
        conf[a:b] = 1.0
        segments.append(Segment(a, b, who, 1.0 if who == "avatar" else 0.0, 1.0, 0.0, 0.0, "override"))
    segments.sort(key=lambda s: (s.start, s.source))
    return Attribution(talk, listen, conf, segments)


def attribution_accuracy(talk_pred: np.ndarray, listen_pred: np.ndarray, talk_true: np.ndarray,
                         listen_true: np.ndarray) -> dict:
    """Frame accuracy over the frames where exactly one true speaker talks (overlaps and silence excluded)."""
    tt, lt = np.asarray(talk_true, bool), np.asarray(listen_true, bool)
    one = tt ^ lt
    n = int(one.sum())
    if n == 0:
        return {"frames": 0, "accuracy": None, "avatar_recall": None, "partner_recall": None}
    tp = np.asarray(talk_pred, bool)
    lp = np.asarray(listen_pred, bool)
    right = (tt & tp & ~lp) | (lt & lp & ~tp)
    def recall(m: np.ndarray) -> float | None:
        m = m & one
        return float(right[m].mean()) if m.any() else None
    return {"frames": n, "accuracy": float(right[one].mean()), "avatar_recall": recall(tt),
            "partner_recall": recall(lt)}

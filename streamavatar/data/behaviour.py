"""Deterministic talk / listen / idle behaviour of an avatar, computed from the two audio tracks of a clip.

*Talking*: mouth opening follows the agent voice's short-time energy with a fixed small latency, mouth width
follows its spectral centroid, the head bobs on energy onsets and tilts with pitch (prosody), and arms gesture
on emphasised stretches. *Listening*: nods at the user's pauses between sentences and on the user's emphasis,
a smile, gaze towards the user (who sits to one side of the camera), blinks, mouth closed. *Idle*: breathing,
blinks, small drifts. State changes blend over :data:`TRANSITION_S`. Everything is a pure function of the
audio, the masks and a seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streamavatar.data.conversation import Conversation
from streamavatar.data.render import Pose

#: Per-frame state codes stored in ``annotations.npz`` (``state``).
IDLE, TALKING, LISTENING = 0, 1, 2
STATE_NAMES = ("idle", "talking", "listening")
#: The mouth lags the sound it is driven by by this much (the energy window ends this long before the frame's).
MOUTH_LATENCY_S = 0.01
#: RMS (of float audio with peak 0.9) that opens the mouth fully.
FULL_OPEN_RMS = 0.3
#: RMS below which the mouth stays closed (silence, breath noise).
MOUTH_GATE_RMS = 0.012
#: Duration of the blend between two states.
TRANSITION_S = 0.4
#: Nod amplitude (radians of head pitch at nod = 1).
NOD_PITCH = 0.22


@dataclass
class Behaviour:
    """Per-frame arrays (length T): every :class:`Pose` field plus ``nod``, ``state``, masks and energies."""

    arrays: dict[str, np.ndarray]

    def pose(self, t: int) -> Pose:
        """The renderer controls of frame ``t``."""
        return Pose(**{k: float(self.arrays[k][t]) for k in Pose.names()})

    @property
    def n_frames(self) -> int:
        return len(self.arrays["state"])


def frame_windows(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int, latency_s: float = 0.0,
                  width: int | None = None) -> np.ndarray:
    """``[n_frames, width]`` windows of ``audio``: frame t covers ``[t/fps - latency, (t+1)/fps - latency)``
    (``width`` defaults to one frame of samples; zero-padded outside the clip)."""
    hop = sample_rate / fps
    width = width or int(round(hop))
    lat = int(round(latency_s * sample_rate))
    starts = (np.arange(n_frames) * hop).round().astype(np.int64) - lat + (int(round(hop)) - width) // 2
    pad = width + lat + 1
    padded = np.concatenate([np.zeros(pad, np.float32), audio.astype(np.float32), np.zeros(pad, np.float32)])
    idx = starts[:, None] + pad + np.arange(width)[None, :]
    return padded[idx]


def short_time_energy(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                      latency_s: float = 0.0) -> np.ndarray:
    """RMS of the audio over each video frame's interval (the measure mouth opening is checked against)."""
    w = frame_windows(audio, sample_rate, fps, n_frames, latency_s)
    return np.sqrt((w.astype(np.float64) ** 2).mean(axis=1))


def spectral_centroid(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                      latency_s: float = 0.0) -> np.ndarray:
    """Spectral centroid in Hz of each frame's window (Hann-weighted)."""
    w = frame_windows(audio, sample_rate, fps, n_frames, latency_s).astype(np.float64)
    spec = np.abs(np.fft.rfft(w * np.hanning(w.shape[1]), axis=1))
    freqs = np.fft.rfftfreq(w.shape[1], 1 / sample_rate)
    return (spec * freqs).sum(axis=1) / np.maximum(spec.sum(axis=1), 1e-9)


def pitch_track(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Fundamental frequency (Hz) per frame by autocorrelation over 80-400 Hz; 0 where unvoiced."""
    w = frame_windows(audio, sample_rate, fps, n_frames, width=int(0.05 * sample_rate)).astype(np.float64)
    w = w - w.mean(axis=1, keepdims=True)
    n = w.shape[1]
    spec = np.fft.rfft(w, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    lo, hi = int(sample_rate / 400), int(sample_rate / 80)
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    strength = ac[np.arange(len(ac)), lag] / np.maximum(ac[:, 0], 1e-12)
    f0 = sample_rate / lag
    f0[(strength < 0.35) | (ac[:, 0] < 1e-4 * n)] = 0.0
    return f0


def _smooth(x: np.ndarray, seconds: float, fps: float) -> np.ndarray:
    n = max(1, int(round(seconds * fps)))
    if n <= 1:
        return x.astype(np.float64)
    k = np.hanning(n + 2)[1:-1]
    k /= k.sum()
    pad = np.pad(x.astype(np.float64), (n, n), mode="edge")
    return np.convolve(pad, k, mode="same")[n:-n]


def _attack_release(target: np.ndarray, attack: float, release: float) -> np.ndarray:
    out = np.zeros_like(target, dtype=np.float64)
    y = 0.0
    for i, x in enumerate(target):
        y += (attack if x > y else release) * (x - y)
        out[i] = y
    return out


def _bump(n_frames: int, start: float, length: float, fps: float) -> np.ndarray:
    """sin^2 bump from ``start`` lasting ``length`` seconds (0 elsewhere)."""
    t = (np.arange(n_frames) + 0.5) / fps
    tau = (t - start) / length
    out = np.sin(np.pi * np.clip(tau, 0, 1)) ** 2
    out[(tau <= 0) | (tau >= 1)] = 0.0
    return out


def _peaks(x: np.ndarray, threshold: float, min_gap: int) -> list[int]:
    cand = [i for i in range(1, len(x) - 1) if x[i] >= threshold and x[i] >= x[i - 1] and x[i] > x[i + 1]]
    out: list[int] = []
    for i in sorted(cand, key=lambda i: -x[i]):
        if all(abs(i - j) >= min_gap for j in out):
            out.append(i)
    return sorted(out)


def _drift(n_frames: int, fps: float, rng: np.random.Generator, amp: float) -> np.ndarray:
    t = np.arange(n_frames) / fps
    out = np.zeros(n_frames)
    for _ in range(3):
        out += np.sin(2 * np.pi * rng.uniform(0.04, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 3


def frame_masks(conv: Conversation, fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame talk mask, listen mask (frame centre inside a turn of the agent / user) and state code.

    A frame where both speak (overlap) is *talking*."""
    centres = (np.arange(n_frames) + 0.5) / fps
    talk = np.zeros(n_frames, bool)
    listen = np.zeros(n_frames, bool)
    for a, b in conv.turn_spans("agent"):
        talk |= (centres >= a) & (centres < b)
    for a, b in conv.turn_spans("user"):
        listen |= (centres >= a) & (centres < b)
    state = np.full(n_frames, IDLE, np.int8)
    state[listen] = LISTENING
    state[talk] = TALKING
    return talk, listen, state


def compute_behaviour(conv: Conversation, fps: float, n_frames: int, rng: np.random.Generator) -> Behaviour:
    """All per-frame controls and labels of one clip (deterministic for the same inputs and generator state)."""
    sr = conv.sample_rate
    T = n_frames
    talk, listen, state = frame_masks(conv, fps, T)
    w_talk = _smooth((state == TALKING).astype(float), TRANSITION_S, fps)
    w_listen = _smooth((state == LISTENING).astype(float), TRANSITION_S, fps)
    w_idle = _smooth((state == IDLE).astype(float), TRANSITION_S, fps)

    # --- talking: mouth from agent energy (fixed latency) and spectral centroid -------------------------------
    e_agent = short_time_energy(conv.agent, sr, fps, T, MOUTH_LATENCY_S)
    target = np.clip((e_agent - MOUTH_GATE_RMS) / (FULL_OPEN_RMS - MOUTH_GATE_RMS), 0, 1)
    mouth_open = _attack_release(target, attack=0.9, release=0.8)
    mouth_open[mouth_open < 1e-3] = 0.0
    centroid = spectral_centroid(conv.agent, sr, fps, T, MOUTH_LATENCY_S)
    voiced = np.clip(target * 4, 0, 1)
    mouth_width = 0.5 + 0.5 * voiced * np.clip((centroid - 1400.0) / 1400.0, -1, 1)
    mouth_width = _smooth(mouth_width, 0.08, fps)

    env = _smooth(np.clip(e_agent / FULL_OPEN_RMS, 0, 1), 0.12, fps)
    env_long = _smooth(env, 0.4, fps)
    onset = np.clip(np.diff(env, prepend=env[:1]), 0, None)
    kernel = np.hanning(max(3, int(0.3 * fps)))
    bob = np.convolve(onset, kernel, mode="full")[(len(kernel) - 1) // 2:][:T]  # "same", also for T < kernel
    bob = np.clip(bob / 2.0, 0, 1) * w_talk
    f0 = pitch_track(conv.agent, sr, fps, T)
    voiced_f0 = f0[(f0 > 0) & talk]
    med = float(np.median(voiced_f0)) if voiced_f0.size else 150.0
    prosody = np.where(f0 > 0, np.log2(np.maximum(f0, 1) / med), 0.0)
    prosody = _smooth(np.clip(prosody, -1, 1), 0.25, fps) * w_talk

    # gestures on emphasis, alternating arms at random
    gest = {"left": np.zeros(T), "right": np.zeros(T)}
    for p in _peaks(env_long, 0.3, int(0.9 * fps)):
        if state[p] != TALKING:
            continue
        length = rng.uniform(0.8, 1.3)
        b = _bump(T, (p + 0.5) / fps - 0.35 * length, length, fps) * rng.uniform(0.5, 1.0)
        side = rng.uniform()
        if side < 0.45:
            gest["left"] += b
        elif side < 0.9:
            gest["right"] += b
        else:
            gest["left"] += b
            gest["right"] += 0.8 * b
    for k in gest:
        gest[k] = np.clip(gest[k], 0, 1) * w_talk

    # --- listening: nods at the user's pauses and emphasis -----------------------------------------------------
    e_user = short_time_energy(conv.user, sr, fps, T)
    env_user = _smooth(_smooth(np.clip(e_user / FULL_OPEN_RMS, 0, 1), 0.12, fps), 0.4, fps)
    triggers: list[float] = []
    user_utts = [u for u in conv.utterances if u.speaker == "user"]
    for u, nxt in zip(user_utts, user_utts[1:], strict=False):
        if nxt.turn == u.turn:
            triggers.append(u.end_s + 0.05)
    triggers += [(p + 0.5) / fps for p in _peaks(env_user, 0.35, int(1.2 * fps)) if state[p] == LISTENING]
    nod = np.zeros(T)
    last = -10.0
    is_listening = state == LISTENING
    for t0 in sorted(triggers):
        length = rng.uniform(0.45, 0.7)
        if t0 - last < 0.9:
            continue
        f0_, f1_ = int(math.floor(t0 * fps)), int(math.ceil((t0 + length) * fps))
        if f0_ < 0 or f1_ > T or not is_listening[f0_:f1_].all():
            continue  # a nod must lie wholly inside a listening phase
        nod += _bump(T, t0, length, fps) * rng.uniform(0.6, 1.0)
        last = t0
    nod = np.clip(nod, 0, 1)
    nod[~is_listening] = 0.0

    # --- shared: blinks, breathing, drifts, gaze, smile --------------------------------------------------------
    blink = np.zeros(T)
    profile = np.array([0.45, 1.0, 1.0, 0.55, 0.2])
    t = rng.uniform(0.3, 3.0)
    while t < T / fps:
        i = int(t * fps)
        seg = profile[: T - i]
        blink[i:i + len(seg)] = np.maximum(blink[i:i + len(seg)], seg)
        t += max(1.2, rng.exponential(3.2))
    time_s = np.arange(T) / fps
    breath = np.sin(2 * np.pi * time_s / rng.uniform(3.2, 4.5) + rng.uniform(0, 2 * np.pi))
    breath *= 0.4 * w_talk + 0.6 * w_listen + 1.0 * w_idle
    user_side = 1.0 if rng.uniform() < 0.5 else -1.0
    look = _drift(T, fps, rng, 0.5)
    gaze_x = w_listen * 0.55 * user_side + (w_talk + w_idle) * 0.35 * look
    gaze_y = _drift(T, fps, rng, 0.25) * (1 - 0.5 * w_listen)
    smile_base = rng.uniform(0.25, 0.7)
    smile = _smooth(w_listen * smile_base + 0.1 * w_talk + 0.05 * w_idle + 0.3 * _smooth(nod, 0.6, fps), 0.3, fps)

    head_yaw = _drift(T, fps, rng, 0.08) + 0.14 * user_side * w_listen + 0.05 * prosody
    head_pitch = (_drift(T, fps, rng, 0.04) + NOD_PITCH * nod + 0.08 * bob - 0.1 * prosody
                  + 0.02 * breath)
    head_roll = _drift(T, fps, rng, 0.05) * (0.5 + w_talk) + 0.05 * user_side * w_listen * smile
    head_dx = _drift(T, fps, rng, 0.006)
    head_dy = 0.012 * bob + 0.01 * nod
    brow_raise = np.clip(1.5 * prosody + 0.3 * bob - 0.2 * w_listen * nod, -1, 1)

    arrays: dict[str, np.ndarray] = {
        "head_yaw": head_yaw, "head_pitch": head_pitch, "head_roll": head_roll,
        "head_dx": head_dx, "head_dy": head_dy,
        "mouth_open": mouth_open, "mouth_width": mouth_width, "smile": np.clip(smile, 0, 1),
        "blink": blink, "gaze_x": np.clip(gaze_x, -1, 1), "gaze_y": np.clip(gaze_y, -1, 1),
        "brow_raise": brow_raise, "breath": breath,
        "arm_left_shoulder": 0.12 + 0.02 * breath + 0.12 * env * w_talk + 0.4 * gest["left"],
        "arm_left_elbow": 1.0 + 0.3 * _smooth(env, 0.3, fps) * w_talk + 1.0 * gest["left"],
        "arm_right_shoulder": 0.12 + 0.02 * breath + 0.12 * np.roll(env, 3) * w_talk + 0.4 * gest["right"],
        "arm_right_elbow": 1.0 + 0.3 * _smooth(np.roll(env, 3), 0.3, fps) * w_talk + 1.0 * gest["right"],
        "nod": nod,
        "state": state, "talk_mask": talk, "listen_mask": listen,
        "agent_energy": e_agent, "user_energy": e_user,
    }
    out = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    return Behaviour(out)

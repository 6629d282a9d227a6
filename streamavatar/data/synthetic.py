"""The synthetic interactive-avatar corpus: clip assembly, the on-disk format, the index and identity splits.

Layout of a corpus folder (described for users in ``docs/corpus.md``)::

    DIR/index.json                      corpus settings + one entry per clip (id, path, identity, split, frames)
    DIR/train.txt, val.txt, test.txt    clip folders of each split (splits are disjoint by identity)
    DIR/clips/clip_00000/video.mp4      H.264 (yuv444p) + AAC of the mixed conversation, 25 fps
    DIR/clips/clip_00000/talk.wav       the avatar's own voice, 16 kHz mono PCM16
    DIR/clips/clip_00000/listen.wav     the user's voice, 16 kHz mono PCM16
    DIR/clips/clip_00000/meta.json      identity parameters, seeds, fps, sentences
    DIR/clips/clip_00000/annotations.npz  per-frame ground truth
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from streamavatar.constants import VIDEO_FPS
from streamavatar.data.avatar import Identity, sample_identity
from streamavatar.data.behaviour import STATE_NAMES, Behaviour, compute_behaviour
from streamavatar.data.conversation import Conversation, build_conversation
from streamavatar.data.render import SUPERSAMPLE, AvatarRenderer
from streamavatar.data.speech import ESPEAK_VARIANTS, ESPEAK_VOICES, SAMPLE_RATE, Voice, check_speech_engine
from streamavatar.data.video_io import DEFAULT_CRF, write_mp4
from streamavatar.errors import UserInputError

FORMAT_NAME = "streamavatar-synthetic-v1"
SPLITS = ("train", "val", "test")
#: Fraction of identities held out for validation and for test each.
HELD_OUT_FRACTION = 0.1
#: Units of each per-frame annotation (copied into meta.json and docs/corpus.md).
ANNOTATION_UNITS: dict[str, str] = {
    "mouth_open": "0 closed .. 1 widest (renderer control)",
    "mouth_width": "0 rounded .. 1 spread, 0.5 neutral (renderer control)",
    "mouth_open_px": "inner lip gap at the mouth centre, output pixels",
    "mouth_width_px": "corner-to-corner mouth width, output pixels",
    "mouth_center_xy": "[T, 2] centre of the mouth opening, output pixels (x right, y down)",
    "face_box": "[T, 4] x0, y0, x1, y1 of the face outline (no hair, no ears), output pixels",
    "head_yaw": "radians, + turns the face towards image right",
    "head_pitch": "radians, + looks down (includes nods)",
    "head_roll": "radians, + clockwise on screen",
    "head_dx": "frame widths", "head_dy": "frame heights",
    "nod": "0 .. 1 listening-nod envelope (head pitch gets nod * 0.22 rad); 0 outside listening",
    "arm_left_shoulder": "radians away from the body (image-left arm), 0 = hanging down",
    "arm_left_elbow": "radians of elbow flexion (image-left arm)",
    "arm_right_shoulder": "radians away from the body (image-right arm)",
    "arm_right_elbow": "radians of elbow flexion (image-right arm)",
    "state": "int8: 0 idle, 1 talking, 2 listening (talking wins in overlaps)",
    "talk_mask": "bool: frame centre inside an agent turn",
    "listen_mask": "bool: frame centre inside a user turn",
    "blink": "0 open .. 1 closed", "smile": "0 .. 1", "gaze_x": "-1 .. 1 (image right +)",
    "gaze_y": "-1 .. 1 (down +)", "brow_raise": "-1 .. 1", "breath": "-1 .. 1",
    "agent_energy": "RMS of the agent voice over the frame (window ending 10 ms early: the mouth latency)",
    "user_energy": "RMS of the user voice over the frame",
}


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one corpus build."""

    clips: int
    seconds: float
    seed: int = 0
    resolution: int = 128
    fps: int = VIDEO_FPS
    clips_per_identity: int = 2
    workers: int = 2
    crf: int = DEFAULT_CRF
    pix_fmt: str = "yuv444p"

    def validate(self) -> None:
        """Raises :class:`UserInputError` on values that cannot make a corpus."""
        if not (isinstance(self.clips, int) and self.clips > 0):
            raise UserInputError(f"--clips must be a positive integer, got {self.clips}")
        if not (np.isfinite(self.seconds) and self.seconds > 0):
            raise UserInputError(f"--seconds must be a positive number, got {self.seconds}")
        if self.seconds * self.fps < 1:
            raise UserInputError(f"--seconds must cover at least one frame at {self.fps} fps, got {self.seconds}")
        if self.resolution not in SUPERSAMPLE:
            raise UserInputError(f"--resolution must be one of {sorted(SUPERSAMPLE)}, got {self.resolution}")
        if self.clips_per_identity < 1:
            raise UserInputError(f"--clips-per-identity must be >= 1, got {self.clips_per_identity}")
        if self.workers < 1:
            raise UserInputError(f"--workers must be >= 1, got {self.workers}")

    @classmethod
    def from_index(cls, index: dict, workers: int = 1) -> SynthConfig:
        """The configuration that built a corpus, read back from its ``index.json`` (to re-render clips)."""
        return cls(clips=len(index["clips"]), seconds=float(index["seconds"]), seed=int(index["seed"]),
                   resolution=int(index["resolution"]), fps=int(index["fps"]),
                   clips_per_identity=int(index["clips_per_identity"]), workers=workers, crf=int(index["crf"]),
                   pix_fmt=str(index["pix_fmt"]))

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def n_identities(self) -> int:
        return -(-self.clips // self.clips_per_identity)


def identity_of_clip(clip: int, clips_per_identity: int) -> int:
    """Clips ``k*cpi … k*cpi + cpi - 1`` show identity ``k``."""
    return clip // clips_per_identity


def split_identities(n_identities: int, seed: int) -> dict[int, str]:
    """Assign each identity to train / val / test (a seeded permutation; 10 % val, 10 % test, at least one each
    once there are three identities)."""
    order = np.random.default_rng([int(seed), 0x5B]).permutation(n_identities)
    if n_identities == 1:
        n_val = n_test = 0
    elif n_identities == 2:
        n_val, n_test = 0, 1
    else:
        n_val = n_test = max(1, int(round(HELD_OUT_FRACTION * n_identities)))
    out: dict[int, str] = {}
    for rank, ident in enumerate(order):
        out[int(ident)] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")
    return out


def _user_voice(rng: np.random.Generator, agent: Voice) -> Voice:
    while True:
        v = Voice(ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))],
                  ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))],
                  int(rng.integers(130, 191)), int(rng.integers(25, 76)))
        if v.variant != agent.variant or v.name != agent.name:
            return v


@dataclass
class Clip:
    """One synthesised clip in memory: frames, the two tracks, behaviour + geometry, identity and metadata."""

    frames: np.ndarray
    conversation: Conversation
    annotations: dict[str, np.ndarray]
    identity: Identity
    meta: dict


def synthesize_clip(cfg: SynthConfig, clip_index: int) -> Clip:
    """Build clip ``clip_index`` of the corpus described by ``cfg`` entirely in memory (deterministic)."""
    ident_id = identity_of_clip(clip_index, cfg.clips_per_identity)
    identity = sample_identity(cfg.seed, ident_id)
    rng = np.random.default_rng([int(cfg.seed), int(clip_index), 0xC1])
    user_voice = _user_voice(rng, identity.voice)
    conv = build_conversation(cfg.seconds, identity.voice, user_voice, rng)
    T = cfg.n_frames
    behaviour: Behaviour = compute_behaviour(conv, cfg.fps, T, rng)
    renderer = AvatarRenderer(identity, cfg.resolution)
    frames = np.empty((T, cfg.resolution, cfg.resolution, 3), np.uint8)
    centre = np.empty((T, 2), np.float32)
    box = np.empty((T, 4), np.float32)
    open_px = np.empty(T, np.float32)
    width_px = np.empty(T, np.float32)
    for t in range(T):
        frames[t], g = renderer.render(behaviour.pose(t))
        centre[t], box[t] = g.mouth_center_xy, g.face_box
        open_px[t], width_px[t] = g.mouth_open_px, g.mouth_width_px
    ann = dict(behaviour.arrays)
    ann.update(mouth_center_xy=centre, face_box=box, mouth_open_px=open_px, mouth_width_px=width_px)
    meta = {
        "format": FORMAT_NAME,
        "clip_index": clip_index,
        "seed": cfg.seed,
        "identity_id": ident_id,
        "fps": cfg.fps,
        "resolution": cfg.resolution,
        "n_frames": T,
        "seconds": cfg.seconds,
        "sample_rate": SAMPLE_RATE,
        "skin_rgb": list(identity.skin_rgb),
        "lip_rgb": list(identity.lip_rgb),
        "identity": identity.to_json(),
        "agent_voice": identity.voice.__dict__,
        "user_voice": user_voice.__dict__,
        "utterances": [u.to_json() for u in conv.utterances],
        "state_names": list(STATE_NAMES),
        "annotation_units": ANNOTATION_UNITS,
    }
    return Clip(frames, conv, ann, identity, meta)


def write_clip(clip: Clip, folder: Path, cfg: SynthConfig) -> None:
    """Write one clip's files into ``folder`` (created; written under a temporary name, then renamed)."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    conv = clip.conversation
    mix = np.clip(0.75 * (conv.agent + conv.user), -1, 1)
    write_mp4(tmp / "video.mp4", clip.frames, cfg.fps, mix, SAMPLE_RATE, crf=cfg.crf, pix_fmt=cfg.pix_fmt)
    sf.write(tmp / "talk.wav", conv.agent, SAMPLE_RATE, subtype="PCM_16")
    sf.write(tmp / "listen.wav", conv.user, SAMPLE_RATE, subtype="PCM_16")
    (tmp / "meta.json").write_text(json.dumps(clip.meta, indent=1))
    np.savez_compressed(tmp / "annotations.npz", **clip.annotations)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def _work(args: tuple[SynthConfig, int, str]) -> dict:
    cfg, k, out = args
    clip = synthesize_clip(cfg, k)
    rel = f"clips/clip_{k:05d}"
    write_clip(clip, Path(out) / rel, cfg)
    a = clip.annotations
    return {"id": f"clip_{k:05d}", "path": rel, "identity": clip.meta["identity_id"], "n_frames": cfg.n_frames,
            "talk_frames": int(a["talk_mask"].sum()), "listen_frames": int(a["listen_mask"].sum())}


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out must be a folder, got an existing file: {out}")
    if out.exists() and any(p.name not in ("READY", "FORMAT.md") for p in out.iterdir()) \
            and not (out / "index.json").exists() and not (out / "clips").exists():
        raise UserInputError(f"--out folder {out} is not empty and holds no corpus; choose an empty folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserInputError(f"--out folder {out} is not writable ({exc.strerror or exc})") from exc


def build_corpus(out: str | Path, cfg: SynthConfig, progress: bool = True) -> dict:
    """Synthesize ``cfg.clips`` clips into ``out`` with ``cfg.workers`` processes; returns the index."""
    cfg.validate()
    check_speech_engine()  # fail early with install instructions
    out = Path(out)
    _check_output(out)
    splits = split_identities(cfg.n_identities, cfg.seed)
    jobs = [(cfg, k, str(out)) for k in range(cfg.clips)]
    bar = tqdm(total=cfg.clips, desc="synth clips", unit="clip", file=sys.stderr, disable=not progress)
    entries: list[dict] = []
    if cfg.workers == 1 or cfg.clips == 1:
        for job in jobs:
            entries.append(_work(job))
            bar.update()
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(cfg.workers, cfg.clips)) as pool:
            for e in pool.imap_unordered(_work, jobs):
                entries.append(e)
                bar.update()
    bar.close()
    entries.sort(key=lambda e: e["id"])
    for e in entries:
        e["split"] = splits[e["identity"]]
    index = {
        "format": FORMAT_NAME,
        "seed": cfg.seed, "fps": cfg.fps, "resolution": cfg.resolution, "seconds": cfg.seconds,
        "sample_rate": SAMPLE_RATE, "n_frames": cfg.n_frames, "clips_per_identity": cfg.clips_per_identity,
        "n_identities": cfg.n_identities, "crf": cfg.crf, "pix_fmt": cfg.pix_fmt,
        "state_names": list(STATE_NAMES),
        "splits": {s: sorted({e["identity"] for e in entries if e["split"] == s}) for s in SPLITS},
        "clips": entries,
    }
    for s in SPLITS:
        (out / f"{s}.txt").write_text("".join(f"{e['path']}\n" for e in entries if e["split"] == s))
    tmp = out / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
    return index

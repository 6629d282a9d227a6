"""Contrastive training of the sync model on corpus clips and its held-out check."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from streamavatar.errors import UserInputError
from streamavatar.eval.audio_features import MELS_PER_FRAME, log_mel
from streamavatar.eval.corpus_clip import CorpusClip, load_corpus_clip, split_clip_ids
from streamavatar.eval.mouth_crop import mouth_maps
from streamavatar.eval.mouth_measure import MouthColours, measure_clip_mouth
from streamavatar.eval.syncnet import MAX_OFFSET, WINDOW, SyncNet, embed_clip, save_syncnet, sync_score
from streamavatar.training.trainer import Objective, Trainer, TrainerConfig


@dataclass
class SyncTrainConfig:
    """Sync model training settings (time-boxed, cosine learning rate over ``minutes``)."""

    minutes: float = 6.0
    batch: int = 64
    shifted_negatives: int = 6
    temperature: float = 0.1
    lr: float = 1e-3
    talking_fraction: float = 0.85
    seed: int = 0


@dataclass
class SyncClipData:
    """What the sync model needs of one clip."""

    clip_id: str
    maps: np.ndarray      # [T, 2, h, w]
    mel: np.ndarray       # [T * 4, N_MELS]
    talk: np.ndarray      # [T] bool


def clip_sync_data(clip: CorpusClip, frames: np.ndarray | None = None, audio: np.ndarray | None = None) -> SyncClipData:
    """Mouth maps of ``frames`` (default: the clip's own video) and log-mel of ``audio`` (default: its talk.wav)."""
    frames = clip.frames() if frames is None else frames
    if audio is None:
        audio, sr = clip.talk_audio()
    else:
        sr = 16000
    T = len(frames)
    m = measure_clip_mouth(frames, clip.meta, clip.annotations)
    idx = np.minimum(np.arange(T), clip.n_frames - 1)
    maps = mouth_maps(frames, MouthColours.from_meta(clip.meta), m, clip.annotations["face_box"][idx])
    talk = np.asarray(clip.annotations["talk_mask"], bool)[idx]
    return SyncClipData(clip.clip_id, maps, log_mel(audio, T, sr), talk)


def load_sync_set(corpus: str | Path, split: str, progress: bool = True) -> list[SyncClipData]:
    """:func:`clip_sync_data` for every clip of a split."""
    ids = split_clip_ids(corpus, split)
    if not ids:
        raise UserInputError(f"split '{split}' of {corpus} has no clips")
    return [clip_sync_data(load_corpus_clip(corpus, cid))
            for cid in tqdm(ids, desc=f"sync data {split}", file=sys.stderr, disable=not progress)]


def _window(clip: SyncClipData, t: int) -> tuple[np.ndarray, np.ndarray]:
    return clip.maps[t:t + WINDOW], clip.mel[t * MELS_PER_FRAME:(t + WINDOW) * MELS_PER_FRAME]


def train_syncnet(data: list[SyncClipData], cfg: SyncTrainConfig, progress: bool = True) -> tuple[SyncNet, dict]:
    """InfoNCE over in-batch windows of other clips plus ``shifted_negatives`` time-shifted audio windows of the
    same clip (shifts of 2..MAX_OFFSET frames)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SyncNet()
    mel_all = np.concatenate([c.mel for c in data])
    model.mel_mean.copy_(torch.from_numpy(mel_all.mean(0)))
    model.mel_std.copy_(torch.from_numpy(mel_all.std(0) + 1e-3))
    talking = [np.flatnonzero(c.talk[WINDOW // 2:len(c.talk) - WINDOW + WINDOW // 2 + 1]) for c in data]
    objective = SyncObjective(cfg, model, data, talking, rng)
    trainer = Trainer(TrainerConfig(steps=None, max_minutes=cfg.minutes, grad_clip=None, log_every=LOG_EVERY),
                      objective, None, run_config=asdict(cfg), progress=progress)
    trainer.fit()
    model.eval()
    return model, {"steps": trainer.step, "seconds": round(trainer.seconds, 1),
                   "final_loss": float(np.mean(objective.losses[-50:]))}


#: Progress-bar postfix / in-memory log every N steps.
LOG_EVERY = 20


class SyncObjective(Objective):
    """InfoNCE of video windows against in-batch audio windows and time-shifted audio of the same clip; cosine
    learning rate over the time budget."""

    columns = ["loss"]
    desc = "train sync"

    def __init__(self, cfg: SyncTrainConfig, model: SyncNet, data: list[SyncClipData], talking: list[np.ndarray],
                 rng: np.random.Generator) -> None:
        super().__init__()
        self.cfg, self.model, self.data, self.talking, self.rng = cfg, model, data, talking, rng
        self.modules = {"model": model}
        params = list(model.parameters())
        self.optimizers = {"optimizer": (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4), params)}
        self.losses: list[float] = []

    def train_step(self, trainer: Trainer) -> dict:
        cfg, rng, data, model = self.cfg, self.rng, self.data, self.model
        for group in self.optimizers["optimizer"][0].param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * trainer.budget_fraction))
        vids, auds, shifted = [], [], []
        for _ in range(cfg.batch):
            k = int(rng.integers(len(data)))
            c = data[k]
            n = len(c.maps) - WINDOW + 1
            if len(self.talking[k]) and rng.random() < cfg.talking_fraction:
                t = int(rng.choice(self.talking[k]))
            else:
                t = int(rng.integers(n))
            v, a = _window(c, t)
            vids.append(v)
            auds.append(a)
            for _ in range(cfg.shifted_negatives):
                o = int(rng.integers(2, MAX_OFFSET + 1)) * (1 if rng.random() < 0.5 else -1)
                shifted.append(_window(c, int(np.clip(t + o, 0, n - 1)))[1])
        v = model.embed_video(torch.from_numpy(np.stack(vids)))
        a = model.embed_audio(torch.from_numpy(np.stack(auds)))
        s = model.embed_audio(torch.from_numpy(np.stack(shifted))).view(cfg.batch, cfg.shifted_negatives, -1)
        logits = torch.cat([v @ a.T, (v[:, None] * s).sum(-1)], 1) / cfg.temperature
        loss = F.cross_entropy(logits, torch.arange(cfg.batch))
        trainer.backward_step("optimizer", loss)
        self.losses.append(float(loss.detach()))
        return {"loss": float(np.mean(self.losses[-LOG_EVERY:]))}


def evaluate_syncnet(model: SyncNet, data: list[SyncClipData]) -> dict:
    """Held-out check: offsets and confidences with the true audio and with another clip's audio."""
    true_off, true_conf, wrong_conf = [], [], []
    for k, c in enumerate(data):
        v, a = embed_clip(model, c.maps, c.mel)
        w = c.talk[:len(v)]
        s = sync_score(v, a, w)
        true_off.append(s.offset)
        true_conf.append(s.confidence)
        other = data[(k + 1) % len(data)]
        _, a2 = embed_clip(model, c.maps, other.mel[:len(c.mel)])
        wrong_conf.append(sync_score(v, a2, w).confidence)
    off = np.abs(np.array(true_off))
    return {"clips": len(data), "offset_within_1_frame": float((off <= 1).mean()),
            "offset_exact": float((off == 0).mean()), "confidence_true_audio": float(np.mean(true_conf)),
            "confidence_other_clip_audio": float(np.mean(wrong_conf)),
            "offsets": [int(o) for o in true_off]}


def train_and_save_syncnet(corpus: str | Path, out: str | Path, cfg: SyncTrainConfig, progress: bool = True) -> dict:
    """Train on the train split, check on the test split (held-out identities), save to ``out``."""
    model, log = train_syncnet(load_sync_set(corpus, "train", progress), cfg, progress)
    report = {"train": log, "train_config": cfg.__dict__,
              "test": evaluate_syncnet(model, load_sync_set(corpus, "test", progress))}
    save_syncnet(model, out, report)
    return report

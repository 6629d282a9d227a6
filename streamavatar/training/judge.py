"""Training the judge on corpus frames and measuring it on held-out identities."""

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
from streamavatar.eval.corpus_clip import load_corpus_clip, split_clip_ids
from streamavatar.eval.judge import REGRESSION_TARGETS, Judge, JudgeConfig, frames_to_tensor, run_judge
from streamavatar.eval.stats import pearson_r
from streamavatar.training.trainer import Objective, Trainer, TrainerConfig


@dataclass
class JudgeTrainConfig:
    """Judge training settings (time-boxed: the learning rate follows a cosine over ``minutes``)."""

    minutes: float = 20.0
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    frame_stride: int = 2          # use every n-th frame of each train clip
    eval_stride: int = 2
    identity_weight: float = 0.3
    state_weight: float = 0.3
    #: Extra weight of the mouth opening in the regression loss (the lip-sync metrics read it).
    mouth_weight: float = 3.0
    #: Folder of a saved judge to continue training from (same corpus, so the same target normalisation).
    init: str | None = None
    seed: int = 0


@dataclass
class FrameSet:
    """Frames with their annotation targets, identity labels and clip ids."""

    frames: np.ndarray             # uint8 [N, H, W, 3]
    targets: np.ndarray            # float32 [N, len(REGRESSION_TARGETS)]
    state: np.ndarray              # int64 [N]
    identity: np.ndarray           # int64 [N] corpus identity id
    clip: np.ndarray               # int64 [N] index into clip_ids
    clip_ids: list[str]


def load_frame_set(corpus: str | Path, split: str, stride: int, limit_clips: int | None = None,
                   progress: bool = True) -> FrameSet:
    """Decode every ``stride``-th frame of the clips of ``split`` with their targets."""
    ids = split_clip_ids(corpus, split)[:limit_clips]
    if not ids:
        raise UserInputError(f"split '{split}' of {corpus} has no clips")
    fr, tg, st, idn, cl = [], [], [], [], []
    for k, cid in enumerate(tqdm(ids, desc=f"decode {split}", file=sys.stderr, disable=not progress)):
        c = load_corpus_clip(corpus, cid)
        f = c.frames()[::stride]
        n = len(f)
        fr.append(f)
        tg.append(np.stack([c.annotations[key][::stride][:n] for key in REGRESSION_TARGETS], 1))
        st.append(c.annotations["state"][::stride][:n].astype(np.int64))
        idn.append(np.full(n, int(c.meta["identity_id"]), np.int64))
        cl.append(np.full(n, k, np.int64))
    return FrameSet(np.concatenate(fr), np.concatenate(tg).astype(np.float32), np.concatenate(st),
                    np.concatenate(idn), np.concatenate(cl), ids)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mild photometric jitter (gain, offset, noise) so the judge tolerates generator colour/noise errors."""
    n = x.shape[0]
    gain = 1.0 + 0.08 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    off = 0.04 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    noise = 0.015 * torch.randn(x.shape, generator=g)
    return (x * gain + off + noise).clamp(0, 1)


def evaluate_judge(model: Judge, data: FrameSet) -> dict:
    """Held-out accuracy: per-target Pearson r and MAE, state accuracy, identity verification."""
    out = run_judge(model, data.frames)
    report: dict = {"frames": int(len(data.frames)), "clips": len(data.clip_ids), "targets": {}}
    for j, key in enumerate(REGRESSION_TARGETS):
        p, t = out.params[key], data.targets[:, j]
        report["targets"][key] = {"r": pearson_r(p, t), "mae": float(np.abs(p - t).mean()),
                                  "target_std": float(t.std())}
    report["state_accuracy"] = float((out.state_prob.argmax(1) == data.state).mean())
    # identity verification on held-out identities: mean embedding per clip; is the nearest other clip the
    # same identity (rank-1), and how far apart are same vs different identity frames
    clip_emb = np.stack([out.identity[data.clip == k].mean(0) for k in range(len(data.clip_ids))])
    clip_emb /= np.linalg.norm(clip_emb, axis=1, keepdims=True)
    clip_ident = np.array([data.identity[data.clip == k][0] for k in range(len(data.clip_ids))])
    sim = clip_emb @ clip_emb.T
    np.fill_diagonal(sim, -np.inf)
    has_pair = np.array([(clip_ident == i).sum() > 1 for i in clip_ident])
    if has_pair.any():
        nn_ident = clip_ident[sim.argmax(1)]
        report["identity_rank1"] = float((nn_ident == clip_ident)[has_pair].mean())
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(out.identity), (2, 4000))
    d = 1.0 - (out.identity[a] * out.identity[b]).sum(1)
    same = data.identity[a] == data.identity[b]
    report["identity_distance_same"] = float(d[same].mean()) if same.any() else None
    report["identity_distance_different"] = float(d[~same].mean()) if (~same).any() else None
    return report


def train_judge(corpus: str | Path, cfg: JudgeTrainConfig, progress: bool = True,
                train_data: FrameSet | None = None) -> tuple[Judge, dict]:
    """Train a judge on the train split for ``cfg.minutes`` of wall time; returns it and its training log."""
    torch.manual_seed(cfg.seed)
    data = train_data or load_frame_set(corpus, "train", cfg.frame_stride, progress=progress)
    idents = np.unique(data.identity)
    label = {int(i): k for k, i in enumerate(idents)}
    ident_label = torch.tensor([label[int(i)] for i in data.identity])
    mean = data.targets.mean(0)
    std = data.targets.std(0) + 1e-6
    jcfg = JudgeConfig(n_identities=len(idents), target_mean=mean.tolist(), target_std=std.tolist(),
                       resolution=int(data.frames.shape[1]))
    model = Judge(jcfg)
    if cfg.init:
        from streamavatar.eval.judge import load_judge

        start = load_judge(cfg.init)
        if start.cfg.n_identities != jcfg.n_identities:
            raise UserInputError(f"--init judge has {start.cfg.n_identities} identities, this corpus "
                                 f"{jcfg.n_identities}")
        model.load_state_dict(start.state_dict())
    objective = JudgeObjective(cfg, model, data, ident_label, mean, std)
    trainer = Trainer(TrainerConfig(steps=None, max_minutes=cfg.minutes, grad_clip=None, log_every=LOG_EVERY),
                      objective, None, run_config=asdict(cfg), progress=progress)
    trainer.fit()
    model.eval()
    return model, {"steps": trainer.step, "seconds": round(trainer.seconds, 1),
                   "train_frames": int(len(data.frames)), "train_identities": int(len(idents)),
                   "log": trainer.history}


#: Log every N steps.
LOG_EVERY = 50


class JudgeObjective(Objective):
    """Regression (smooth L1, mouth weighted) + state + identity classification of corpus frames; cosine
    learning rate over the time budget; epochs over a seeded permutation."""

    columns = ["loss", "reg", "state", "identity"]
    desc = "train judge"

    def __init__(self, cfg: JudgeTrainConfig, model: Judge, data: FrameSet, ident_label: torch.Tensor,
                 mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.cfg, self.model, self.data, self.ident_label = cfg, model, data, ident_label
        self.modules = {"model": model}
        params = list(model.parameters())
        self.optimizers = {"optimizer": (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
                                         params)}
        self.weights = torch.ones(len(REGRESSION_TARGETS))
        self.weights[REGRESSION_TARGETS.index("mouth_open")] = cfg.mouth_weight
        self.targets = torch.from_numpy((data.targets - mean) / std)
        self.state = torch.from_numpy(data.state)
        self.generator.manual_seed(cfg.seed)
        self._batches = self._epochs()

    def _epochs(self):
        n, b = len(self.data.frames), self.cfg.batch
        while True:
            order = torch.randperm(n, generator=self.generator)
            for i in range(0, n - b + 1, b):
                yield order[i:i + b]

    def train_step(self, trainer: Trainer) -> dict:
        cfg = self.cfg
        for group in self.optimizers["optimizer"][0].param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * trainer.budget_fraction))
        idx = next(self._batches)
        x = _augment(frames_to_tensor(self.data.frames[idx.numpy()], self.model.cfg.resolution), self.generator)
        with trainer.autocast():
            o = self.model(x)
        loss_reg = (F.smooth_l1_loss(o["regress"], self.targets[idx], beta=0.5, reduction="none")
                    * self.weights).mean()
        loss_state = F.cross_entropy(o["state"], self.state[idx])
        loss_id = F.cross_entropy(o["identity_logits"], self.ident_label[idx])
        loss = loss_reg + cfg.state_weight * loss_state + cfg.identity_weight * loss_id
        trainer.backward_step("optimizer", loss)
        return {"loss": float(loss.detach()), "reg": float(loss_reg.detach()), "state": float(loss_state.detach()),
                "identity": float(loss_id.detach())}


def train_and_save_judge(corpus: str | Path, out: str | Path, cfg: JudgeTrainConfig, progress: bool = True) -> dict:
    """Train on the train split, measure on the val and test splits (held-out identities), save to ``out``."""
    from streamavatar.eval.judge import save_judge

    model, train_log = train_judge(corpus, cfg, progress=progress)
    report = {"train": {k: v for k, v in train_log.items() if k != "log"}, "train_config": cfg.__dict__}
    for split in ("val", "test"):
        report[split] = evaluate_judge(model, load_frame_set(corpus, split, cfg.eval_stride, progress=progress))
    save_judge(model, out, report)
    return report

"""The one training loop: :class:`Trainer` runs an :class:`Objective` (Self-Forcing's trainer / ``model/``
objectives split).

The trainer owns everything that is the same for every run: the device and the autocast dtype, optimiser
stepping with gradient clipping (a step whose gradient norm is not finite is dropped), EMA of the declared
modules, the step counter, the time budget and step limit, the CSV log + progress bar, and atomic checkpoints
(temporary file + ``os.replace``) holding the modules, optimisers, EMA shadows, every RNG state, the objective's
generator and the run config — so ``kill -9`` + ``--resume`` continues exactly. An objective only says what
it trains (:attr:`Objective.modules`, :attr:`Objective.optimizers`, :attr:`Objective.ema_modules`) and how one
step computes its losses (:meth:`Objective.train_step`, which calls :meth:`Trainer.backward_step` for each
optimiser it steps).

Checkpoint layout (``checkpoint.pt``, unchanged since wave 1, so older runs resume): one entry per module
name (``model``, ``projector``, ``fake``, …), one per optimiser name (``optimizer``, ``fake_optimizer``, …),
``ema_<module>`` for each averaged module, ``rng``, ``generator``, ``config`` and ``step``.

Under ``torchrun`` (``WORLD_SIZE > 1``) the trainer shards the trained modules with FSDP2, reduces and clips
gradients globally in :meth:`Trainer.backward_step`, agrees on stopping and checkpointing across ranks, and
writes full (unsharded) checkpoints from rank 0 in the layout above (:mod:`~streamavatar.training.distributed`;
docs/distributed.md). An objective opts in with :attr:`Objective.distributed`: it draws the global batch, keeps
its part (:meth:`Trainer.shards`) and passes :meth:`Trainer.backward_step` one loss per micro-batch (gradient
accumulation). An adversarial objective declares two optimisers and steps both from its ``train_step``, as SiD
already does.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from streamavatar.errors import UserInputError
from streamavatar.hardware import resolve_dtype_name
from streamavatar.training import distributed as D
from streamavatar.training.state import (
    EMA,
    clip_and_step,
    clipped_step,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.csv"
#: Autocast dtypes by name; ``fp32`` runs without autocast; ``auto`` is bf16 where the device computes it natively,
#: else fp32 (:func:`streamavatar.hardware.resolve_dtype_name`).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
AUTOCAST_CHOICES = ("auto", *AUTOCAST_DTYPES)


@dataclass
class TrainerConfig:
    """What the loop needs from a run's config (each run config maps its own fields onto this)."""

    #: Step limit (``None``: only the time budget stops the run).
    steps: int | None
    max_minutes: float
    #: Checkpoint every N steps (0: not by steps) and/or every M minutes of training time.
    checkpoint_every: int = 0
    checkpoint_minutes: float | None = None
    #: Gradient-norm clipping (``None``: the norm is measured, nothing is clipped).
    grad_clip: float | None = 1.0
    ema: float = 0.99
    device: str = "cpu"
    autocast: str = "auto"
    #: Log every N steps (and step 1) to ``log_name`` in the run folder.
    log_every: int = 1
    log_name: str = LOG
    #: Whether the time budget counts training time across resumes (else each invocation gets ``max_minutes``).
    clock_spans_resumes: bool = False
    #: Micro-batches per optimiser step (the objective splits its global batch; needs ``Objective.distributed``).
    grad_accum: int = 1
    #: Recompute the DiT blocks (a trained module's ``blocks``) in the backward pass to save activation memory.
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.autocast not in AUTOCAST_CHOICES:
            raise UserInputError(f"autocast must be one of {list(AUTOCAST_CHOICES)}, got {self.autocast!r}")
        self.autocast = resolve_dtype_name(self.autocast, self.device)
        if self.grad_accum <= 0:
            raise UserInputError(f"grad_accum must be positive, got {self.grad_accum}")
        if self.checkpoint_every < 0 or self.log_every <= 0:
            raise UserInputError(f"checkpoint_every must be >= 0 and log_every > 0, got {self.checkpoint_every}, "
                                 f"{self.log_every}")


def autocast(device: str | torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Autocast on ``device``'s type with the named dtype (``fp32``: none) — for work done outside a
    :class:`Trainer` with a run's settings (teacher trajectories, latent statistics)."""
    dtype = resolve_dtype_name(dtype, str(device))
    if AUTOCAST_DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=AUTOCAST_DTYPES[dtype])


def trainer_config(cfg) -> TrainerConfig:
    """The loop settings of a run config with ``steps``, ``max_minutes``, ``checkpoint_every``, ``grad_clip``,
    ``ema``, ``device`` and ``autocast`` fields (teacher and distillation runs)."""
    return TrainerConfig(steps=cfg.steps, max_minutes=cfg.max_minutes, checkpoint_every=cfg.checkpoint_every,
                         grad_clip=cfg.grad_clip, ema=cfg.ema, device=cfg.device, autocast=cfg.autocast,
                         grad_accum=getattr(cfg, "grad_accum", 1),
                         activation_checkpointing=getattr(cfg, "activation_checkpointing", False))


class Objective:
    """What one kind of run trains and how one step computes its losses (subclass and fill in)."""

    #: CSV columns after ``step`` and ``minutes`` (missing values are written empty).
    columns: list[str] = []
    #: Progress-bar label.
    desc: str = "train"

    def __init__(self) -> None:
        #: Everything checkpointed, by checkpoint key.
        self.modules: dict[str, nn.Module] = {}
        #: Optimisers by checkpoint key, with the parameters their gradient clipping covers.
        self.optimizers: dict[str, tuple[torch.optim.Optimizer, list[nn.Parameter]]] = {}
        #: Names (keys of :attr:`modules`) whose EMA is kept (checkpoint key ``ema_<name>``).
        self.ema_modules: list[str] = []
        #: The objective's own random generator (noise, σ, data order), checkpointed.
        self.generator = torch.Generator()

    #: Checkpoint entries (module or optimiser names) an older checkpoint may lack; they then start fresh.
    optional_state: frozenset[str] = frozenset()
    #: Name of the time column of the log.
    clock_column: str = "minutes"
    #: Whether the objective runs under torchrun and with gradient accumulation: it draws the same global
    #: batch on every rank, keeps ``trainer.shards(batch)`` and passes ``backward_step`` a loss per micro-batch
    #: scaled as :mod:`~streamavatar.training.distributed` says.
    distributed: bool = False

    def train_step(self, trainer: Trainer) -> dict[str, Any] | None:
        """One step: compute losses under ``trainer.autocast()``, step optimisers with
        ``trainer.backward_step``; return the stats to log, or ``None`` to drop the step (not counted)."""
        raise NotImplementedError

    def after_step(self, trainer: Trainer) -> None:
        """Called after every counted step (periodic evaluation; wrap slow work in ``trainer.paused()``)."""

    def finish(self, trainer: Trainer) -> None:
        """Called once after the last step, before the final checkpoint (a last evaluation)."""

    def state_dict(self) -> dict[str, Any]:
        """Extra checkpoint entries of the objective (e.g. a NumPy generator's state)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (``state`` is the whole checkpoint)."""

    def export(self, trainer: Trainer) -> None:
        """Write the run's exported weights (called after every checkpoint)."""


class TrainLog:
    """A CSV log (appended on resume; ``path=None``: rows kept in :attr:`rows` instead) and a tqdm bar on
    stderr."""

    def __init__(self, path: Path | None, columns: list[str], total: int | None, initial: int, desc: str,
                 progress: bool) -> None:
        self.columns = columns
        self.rows: list[dict] = []
        self.file = self.writer = None
        if path is not None:
            if path.exists():
                _truncate_log(path, initial)
                _widen_log(path, columns)
            new = not path.exists()
            self.file = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
            self.writer = csv.writer(self.file)
            if new:
                self.writer.writerow(columns)
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not progress)

    def row(self, values: dict) -> None:
        if self.writer is not None:
            self.writer.writerow([values.get(k, "") for k in self.columns])
        else:
            self.rows.append(values)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{values[k]:.4g}" for k in self.columns[2:4] if isinstance(values.get(k), float)})

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()


def _truncate_log(path: Path, step: int) -> None:
    """Drop the rows logged after checkpoint ``step`` (a run killed between checkpoints logged steps that its
    resume repeats), so the log's steps stay one increasing sequence."""
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1]
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        if not head.strip().isdigit() or int(head) > step or not line.endswith("\n"):
            break
        keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep))
        tmp.replace(path)


def _widen_log(path: Path, columns: list[str]) -> None:
    """Rewrite a log whose header is not ``columns`` (a run resumed by a version that logs more or other
    columns) under the new header, old values kept by name and new ones left empty, so every row matches it."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] == columns:
        return
    old = rows[0]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows[1:]:
            named = dict(zip(old, r, strict=False))  # a row cut short by a kill keeps what it has
            w.writerow([named.get(k, "") for k in columns])
    tmp.replace(path)


def open_checkpoint(out: str | Path, resume: bool) -> dict | None:
    """The checkpoint to resume from: ``None`` for a fresh run (which refuses a folder that holds one)."""
    out = Path(out)
    path = out / CHECKPOINT
    if not resume:
        if path.exists():
            raise UserInputError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        return None
    if not path.is_file():
        raise UserInputError(f"--resume: no checkpoint in {out}")
    return load_checkpoint(path)


class Trainer:
    """Runs ``objective`` in the run folder ``out`` (see the module docstring). With ``out=None`` nothing is
    written: logged rows are kept in :attr:`history` (the judges, which save their own files)."""

    def __init__(self, cfg: TrainerConfig, objective: Objective, out: str | Path | None, *, run_config: dict,
                 state: dict | None = None, progress: bool = True,
                 on_checkpoint: Callable[[int, Path], None] | None = None, started: float | None = None) -> None:
        self.cfg = cfg
        self.objective = objective
        self.out = Path(out) if out is not None else None
        self.run_config = run_config
        self.progress = progress
        self.on_checkpoint = on_checkpoint
        self._started = time.monotonic() if started is None else started
        self._paused_s = 0.0
        self._elapsed_before = 0.0
        self.dist = D.dist_env(cfg.device)
        self.device = torch.device(D.rank_device(cfg.device, self.dist))
        self.autocast_dtype = AUTOCAST_DTYPES[cfg.autocast]
        if (self.dist.enabled or cfg.grad_accum > 1 or cfg.activation_checkpointing) and not objective.distributed:
            # (activation checkpointing too: a recomputed forward must have no side effects, e.g. no KV-cache
            # writes of a streaming rollout, which only the opted-in full-sequence objectives guarantee)
            raise UserInputError(f"{objective.desc} does not support torchrun, --grad-accum or "
                                 "--activation-checkpointing yet")
        for m in objective.modules.values():
            m.to(self.device)
        #: The sharded (FSDP2) modules and a container of them for the state-dict helpers (empty: 1 process).
        self._sharded: dict[str, nn.Module] = {}
        self._root = nn.ModuleDict()
        trained = self._trained_modules()
        if cfg.activation_checkpointing and not sum(D.apply_activation_checkpointing(m) for m in trained.values()):
            raise UserInputError(f"{objective.desc}: no trained module has blocks to checkpoint")
        if self.dist.enabled:
            self._shard(trained)
        self.ema = {name: EMA(objective.modules[name], cfg.ema) for name in objective.ema_modules}
        self._full_ema: dict[str, dict[str, torch.Tensor]] = {}
        self.step = 0
        self.last: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        if state is not None:
            self.load_state_dict(state)

    def _trained_modules(self) -> dict[str, nn.Module]:
        """The modules holding parameters some optimiser steps."""
        trained = {id(p) for _, params in self.objective.optimizers.values() for p in params}
        return {n: m for n, m in self.objective.modules.items() if any(id(p) in trained for p in m.parameters())}

    def _shard(self, trained: dict[str, nn.Module]) -> None:
        """FSDP2 on every trained module; the optimisers are pointed at the sharded parameters."""
        o = self.objective
        self._root = nn.ModuleDict(trained)
        before = {id(p): n for n, p in self._root.named_parameters()}
        policy = D.fsdp_policy(self.device, self.cfg.autocast)
        for m in trained.values():
            D.shard_module(m, policy)
        self._sharded = dict(trained)
        after = dict(self._root.named_parameters())
        for key, (opt, params) in o.optimizers.items():
            D.rebind_optimizer(opt, before, after)
            o.optimizers[key] = (opt, [after[before[id(p)]] for p in params])

    # --- what objectives call -------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision on the trainer's device (a no-op for ``fp32``)."""
        return autocast(self.cfg.device, self.cfg.autocast)

    def backward_step(self, optimizer: str, loss: torch.Tensor | Callable[[int], torch.Tensor],
                      clip: bool = True) -> float:
        """Backward ``loss``, clip (unless ``clip=False`` or no ``grad_clip``) and step the named optimiser;
        returns the pre-clip global gradient norm (not finite: nothing changed).

        ``loss`` may be a function of the micro-batch index: it is called and backwarded ``grad_accum`` times
        (gradients summed; under FSDP reduced across ranks only after the last), then one step is taken."""
        opt, params = self.objective.optimizers[optimizer]
        max_norm = self.cfg.grad_clip if clip and self.cfg.grad_clip is not None else math.inf
        if not callable(loss):
            return clipped_step(opt, params, loss, max_norm)
        opt.zero_grad(set_to_none=True)
        n = self.cfg.grad_accum
        for i in range(n):
            if self._sharded:
                D.set_gradient_sync(list(self._sharded.values()), i == n - 1)
            loss(i).backward()
        return clip_and_step(opt, params, max_norm)

    def shards(self, batch: int) -> list[slice]:
        """This rank's micro-batches (``grad_accum`` slices) of a global batch of ``batch`` items."""
        return D.shard_slices(batch, self.dist, self.cfg.grad_accum)

    def sum_across_ranks(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` (any shape) summed over ranks, float64 on CPU (itself in one process)."""
        return self.dist.sum(values)

    @property
    def seconds(self) -> float:
        """Training time of this run: wall time since the start, less :meth:`paused` time (plus the time of
        earlier invocations when the clock spans resumes)."""
        return self._elapsed_before + time.monotonic() - self._started - self._paused_s

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @property
    def budget_fraction(self) -> float:
        """How much of the time budget is spent (0 … 1), for time-based schedules."""
        return min(1.0, self.minutes / self.cfg.max_minutes)

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside does not count as training time (evaluation, checkpoints)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self._paused_s += time.monotonic() - t0

    def logs_step(self, step: int) -> bool:
        """Whether step number ``step`` will be logged (objectives skip costly stats otherwise)."""
        return step == 1 or step % self.cfg.log_every == 0

    # --- state ----------------------------------------------------------------------------------------------
    def ema_state(self, name: str) -> dict[str, torch.Tensor]:
        """The EMA shadow of module ``name`` (float32, the module's state-dict keys; under torchrun the full
        shadow gathered by the last checkpoint, on rank 0)."""
        if self._sharded:
            return self._full_ema[name]
        return self.ema[name].shadow

    def state_dict(self) -> dict:
        """The checkpoint (under torchrun a collective: full tensors on rank 0, partial entries elsewhere)."""
        o = self.objective
        if not self._sharded:
            state: dict[str, Any] = {"step": self.step, "elapsed_s": self.seconds}
            state.update({name: m.state_dict() for name, m in o.modules.items()})
            state.update({name: opt.state_dict() for name, (opt, _) in o.optimizers.items()})
            state.update({f"ema_{name}": e.shadow for name, e in self.ema.items()})
            state.update({"rng": rng_state(), "generator": o.generator.get_state(), "config": self.run_config})
            state.update(o.state_dict())
            return state
        main = self.dist.is_main
        state = {"step": self.step, "elapsed_s": self.seconds}
        state.update({name: D.full_model_state(m) if name in self._sharded else m.state_dict()
                      for name, m in o.modules.items()})
        state.update({name: D.full_optimizer_state(self._root, opt, main) for name, (opt, _) in o.optimizers.items()})
        self._full_ema = {name: D.full_tensors(e.shadow, main) for name, e in self.ema.items()}
        state.update({f"ema_{name}": shadow for name, shadow in self._full_ema.items()})
        ranks = self.dist.gather_objects(rng_state())
        state.update({"rng": ranks[0], "rng_ranks": ranks, "generator": o.generator.get_state(),
                      "config": self.run_config, "world_size": self.dist.world})
        state.update(o.state_dict())
        return state

    def _entry(self, state: dict, name: str):
        if state.get(name) is None:
            if name in self.objective.optional_state:
                return None
            raise UserInputError(f"the checkpoint has no {name!r} entry; it is not a run of this kind")
        return state[name]

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint (also those written before this trainer: entries an objective names optional
        may be missing, and the objective reads its own legacy keys in :meth:`Objective.load_state_dict`)."""
        o = self.objective
        for name, m in o.modules.items():
            if (entry := self._entry(state, name)) is not None:
                if name in self._sharded:
                    D.load_full_model_state(m, entry)
                else:
                    m.load_state_dict(entry)
        for name, (opt, _) in o.optimizers.items():
            if (entry := self._entry(state, name)) is not None:
                if self._sharded:
                    D.load_full_optimizer_state(self._root, opt, entry)
                else:
                    opt.load_state_dict(entry)
        for name, e in self.ema.items():
            full = state[f"ema_{name}"]
            e.shadow = D.shard_like(full, e.shadow) if name in self._sharded else full
        self.step = int(state["step"])
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.dist.world:
            set_rng_state(ranks[self.dist.rank])
        elif "rng" in state:
            set_rng_state(state["rng"])
        if "generator" in state:
            o.generator.set_state(state["generator"])
        if self.cfg.clock_spans_resumes:
            self._elapsed_before = float(state.get("elapsed_s", 0.0))
        o.load_state_dict(state)

    def save(self) -> None:
        """Atomic checkpoint, then the objective's export and the ``on_checkpoint`` hook (under torchrun every
        rank gathers, rank 0 writes, and all wait for it)."""
        if self.out is None:
            return
        state = self.state_dict()
        if self.dist.is_main:
            save_atomic(state, self.out / CHECKPOINT)
            self.objective.export(self)
            if self.on_checkpoint is not None:
                self.on_checkpoint(self.step, self.out)
        self.dist.barrier()

    # --- the loop -------------------------------------------------------------------------------------------
    def _done(self) -> bool:
        return (self.cfg.steps is not None and self.step >= self.cfg.steps) or self.minutes >= self.cfg.max_minutes

    def fit(self) -> dict[str, Any]:
        """Train until the step limit or the time budget; checkpoint on the configured cadence and at the end.
        Returns the last logged row."""
        o = self.objective
        columns = ["step", o.clock_column, *o.columns]
        main = self.dist.is_main
        if self.out is not None and main:
            self.out.mkdir(parents=True, exist_ok=True)
        log = TrainLog(self.out / self.cfg.log_name if self.out is not None and main else None, columns,
                       self.cfg.steps, self.step, o.desc, self.progress and main)
        self.history = log.rows
        last_ckpt = self.seconds
        try:
            while not self.dist.any([self._done()])[0]:
                for m in o.modules.values():
                    m.train()
                stats = o.train_step(self)
                if stats is None:
                    continue
                for name, e in self.ema.items():
                    e.update(o.modules[name])
                self.step += 1
                if self.logs_step(self.step):
                    self.last = {"step": self.step, o.clock_column: round(self.minutes, 3), **stats}
                    log.row(self.last)
                else:
                    log.bar.update(1)
                o.after_step(self)
                by_steps = self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0
                by_time = (self.cfg.checkpoint_minutes is not None
                           and self.seconds - last_ckpt >= 60 * self.cfg.checkpoint_minutes)
                if by_steps or (self.dist.any([by_time])[0] if self.cfg.checkpoint_minutes is not None else False):
                    with self.paused():
                        log.flush()
                        self.save()
                    last_ckpt = self.seconds
                D.maybe_test_kill(self.step, self.dist)
        finally:
            log.close()
        o.finish(self)
        self.save()
        return self.last


def finite(x: float) -> bool:
    """Shorthand for objectives: was a gradient norm finite (the step taken)?"""
    return math.isfinite(x)

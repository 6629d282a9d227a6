"""Stage 1a — ODE initialisation of the block-causal student (CausVid-style; paper.md §4 (a), §9.1).

1. **Trajectories.** The teacher (bidirectional, reference + 9 latent frames) integrates its flow ODE from pure
   noise with deterministic Euler steps (``teacher_steps``, default 40, on its shifted grid) and talk/listen
   guidance. The student's N = 3 noise levels (σ of the shifted student timesteps 1000, 666.7, 333.3 → 1.0,
   0.909, 0.714) are merged into the Euler grid, so the trajectory passes through each of them exactly; the
   states there and the endpoint x0 are kept. Pairs are cached on disk in shards, each regenerable from the
   run seed and its shard index (a key over the teacher weights and sampling settings names the folder).
2. **Regression.** The student (teacher weights, block-causal) gets per chunk a random level k and the
   trajectory state at σ_k, and regresses the endpoint (MSE on the x0 it implies). The reference is clean
   (t = 0) and has no loss.

**Context = inference.** At inference with ``cache_refresh="last_step"`` a finished chunk stays in the cache as
the keys/values of its *last* denoising pass: its input at the last level σ_N with timestep σ_N·1000, which
attended to the reference and to the earlier chunks at σ_N. A plain block-causal forward cannot give that when
chunks sit at different random levels (a later chunk would see an earlier one at *its* level). So the training
sequence holds every earlier chunk twice: ``[ref][chunks 1…n−1 at σ_N (context)][chunks 1…n at their random
levels]`` with a frame mask in which a context chunk sees the reference and the context chunks up to itself, and
a denoised chunk i sees the reference, context chunks < i and itself; temporal RoPE indices are the true ones
(a copy shares its chunk's index). This is exactly the attention the streaming cache gives before any
eviction — and a 9-frame window never evicts (sink 4 + window 3 + chunk 3 = the RAPR layout 0…9). The context
state at σ_N is the trajectory's own state there (same marginal as "x0 estimate + fresh noise at σ_N", what
the sampler feeds its last pass). Because nothing is evicted inside a teacher window, the three ablation variants
(no sink / sink / sink + RAPR) get the same ODE initialisation; they differ from the SiD phase on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from streamavatar.config import StreamConfig
from streamavatar.diffusion.flow import few_step_sigmas, predicted_x0, shift_sigma, sigma_to_timestep
from streamavatar.diffusion.teacher_sampler import guided_euler
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT
from streamavatar.training.distill import (
    DistillConfig,
    StudentObjective,
    check_teacher,
    collate,
    fit_student,
    load_init_run,
    load_run,
    load_windows,
    open_run,
    run_files,
    student_model_config,
)
from streamavatar.training.distributed import dist_env, resuming
from streamavatar.training.teacher import adamw
from streamavatar.training.trainer import CHECKPOINT, Trainer, autocast, finite

#: Two σ closer than this are the same grid point.
SIGMA_TOL = 1e-6


def trajectory_sigmas(steps: int, shift: float, keep: list[float]) -> list[float]:
    """The teacher's Euler grid (``steps`` uniform σ from 1 to 0, shifted) with the levels ``keep`` merged in."""
    if steps < 1:
        raise UserInputError(f"teacher steps must be >= 1, got {steps}")
    grid = [float(shift_sigma(1 - i / steps, shift)) for i in range(steps + 1)]
    for s in keep:
        if not 0.0 < s <= 1.0:
            raise ValueError(f"kept levels must lie in (0, 1], got {s}")
        if all(abs(s - g) > SIGMA_TOL for g in grid):
            grid.append(float(s))
    return sorted(grid, reverse=True)


@torch.no_grad()
def teacher_trajectory(teacher: AvatarDiT, reference: torch.Tensor, noise: torch.Tensor, grid: list[float],
                       keep: list[float], *, talk: torch.Tensor | None, listen: torch.Tensor | None,
                       null_talk: torch.Tensor | None, null_listen: torch.Tensor | None, talk_scale: float,
                       listen_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic guided Euler from ``noise`` over ``grid``; (states at ``keep`` ``[B, L, C, F, h, w]``, x0).

    The teacher sees ``[reference (t = 0) | x_σ]``; audio tokens cover the generated frames."""
    kept: dict[int, torch.Tensor] = {}

    def keep_level(s_now: float, x: torch.Tensor) -> None:
        for j, s in enumerate(keep):
            if abs(s - s_now) <= SIGMA_TOL:
                kept[j] = x.clone()

    x = guided_euler(teacher, reference.float(), noise, grid, talk_audio=talk, listen_audio=listen,
                     null_talk=null_talk, null_listen=null_listen, talk_scale=talk_scale, listen_scale=listen_scale,
                     on_level=keep_level)
    if len(kept) != len(keep):
        raise RuntimeError(f"levels {keep} are not all on the grid")
    return torch.stack([kept[j] for j in range(len(keep))], dim=1), x


def context_frame_mask(chunks: int, chunk_frames: int, reference_frames: int = 1) -> torch.Tensor:
    """Frame mask ``[F, F]`` of ``[ref][context chunks 1…n−1][denoised chunks 1…n]`` (see the module docstring)."""
    ctx = chunks - 1
    f = reference_frames + (ctx + chunks) * chunk_frames
    # block id of each frame: 0 reference, ("ctx", j) or ("cur", i)
    kinds: list[tuple[str, int]] = [("ref", 0)] * reference_frames
    kinds += [("ctx", 1 + k // chunk_frames) for k in range(ctx * chunk_frames)]
    kinds += [("cur", 1 + k // chunk_frames) for k in range(chunks * chunk_frames)]
    mask = torch.zeros(f, f, dtype=torch.bool)
    for a, (ka, ia) in enumerate(kinds):
        for b, (kb, ib) in enumerate(kinds):
            if kb == "ref":
                mask[a, b] = True
            elif ka == "ctx":
                mask[a, b] = kb == "ctx" and ib <= ia
            elif ka == "cur":
                mask[a, b] = (kb == "ctx" and ib < ia) or (kb == "cur" and ib == ia)
    return mask


def context_frame_positions(chunks: int, chunk_frames: int, reference_frames: int = 1) -> torch.Tensor:
    """True temporal indices of the frames of :func:`context_frame_mask` (a context copy shares its chunk's)."""
    ctx = torch.arange(reference_frames, reference_frames + (chunks - 1) * chunk_frames)
    cur = torch.arange(reference_frames, reference_frames + chunks * chunk_frames)
    return torch.cat([torch.arange(reference_frames), ctx, cur])


def context_forward(student: AvatarDiT, reference: torch.Tensor, context: torch.Tensor, current: torch.Tensor,
                    t_context: float, t_current: torch.Tensor, talk: torch.Tensor | None,
                    listen: torch.Tensor | None) -> torch.Tensor:
    """Student output for every chunk of ``current [B, C, n·c, h, w]`` (timesteps ``t_current [B, n·c]``) as the
    streaming sampler computes it: chunk i attends to the reference and to chunks < i given by ``context
    [B, C, (n−1)·c, h, w]`` at timestep ``t_context`` (their last denoising pass), all in one masked forward.

    Audio tokens ``[B, n·c, …]`` cover the current frames (the context copies reuse them)."""
    b = reference.shape[0]
    nc = current.shape[2]
    cf = nc - context.shape[2]
    if cf <= 0 or nc % cf:
        raise UserInputError(f"{context.shape[2]} context frames do not fit {nc} current frames")
    n = nc // cf
    seq = torch.cat([reference, context, current], dim=2)
    t = torch.cat([torch.zeros(b, reference.shape[2]), torch.full((b, context.shape[2]), float(t_context)),
                   t_current], dim=1)

    def doubled(a: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None else torch.cat([a[:, :context.shape[2]], a], dim=1)

    out = student(seq, t, talk_audio=doubled(talk), listen_audio=doubled(listen), reference=reference,
                  frame_positions=context_frame_positions(n, cf), frame_mask=context_frame_mask(n, cf))
    return out[:, :, reference.shape[2] + context.shape[2]:].float()


def ode_regression_loss(student: AvatarDiT, projector, batch: dict, stream: StreamConfig,
                        generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """MSE of the student's x0 on trajectory states at per-chunk random levels, with σ_N context chunks.

    ``batch``: ``reference [B, C, 1, h, w]``, ``states [B, L, C, F, h, w]``, ``x0 [B, C, F, h, w]``, raw audio
    windows ``talk``/``listen`` ``[B, F, …]``."""
    states = batch["states"]
    level = draw_levels(states.shape[0], states.shape[1], states.shape[3], stream, generator)
    loss, per_frame, level_f = ode_regression_terms(student, projector, batch, stream, level)
    n_levels = states.shape[1]
    per_level = {f"mse_l{k}": float(per_frame[level_f == k].mean()) if (level_f == k).any() else float("nan")
                 for k in range(n_levels)}
    return loss, {"loss": float(loss.detach()), **per_level}


def draw_levels(b: int, n_levels: int, frames: int, stream: StreamConfig, generator: torch.Generator
                ) -> torch.Tensor:
    """The random trajectory level of each chunk of ``b`` windows of ``frames`` latent frames, ``[b, chunks]``."""
    c = stream.chunk_frames
    if frames % c:
        raise UserInputError(f"trajectories of {frames} frames do not split into chunks of {c}")
    return torch.randint(n_levels, (b, frames // c), generator=generator)


def ode_regression_terms(student: AvatarDiT, projector, batch: dict, stream: StreamConfig, level: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss of :func:`ode_regression_loss` at the given chunk ``level`` s, with the detached per-frame
    error ``[B, F]`` and the level of every frame ``[B, F]``."""
    ref, states, x0 = batch["reference"], batch["states"], batch["x0"]
    b, n_levels, _, f = states.shape[:4]
    c = stream.chunk_frames
    n = f // c
    sigmas = torch.tensor(few_step_sigmas(stream.timesteps, stream.shift))
    if len(sigmas) != n_levels:
        raise UserInputError(f"trajectories hold {n_levels} levels, the student has {len(sigmas)} steps")
    level_f = level.repeat_interleave(c, dim=1)  # [B, F]
    idx = level_f.view(b, 1, 1, f, 1, 1).expand(-1, 1, states.shape[2], -1, *states.shape[-2:])
    cur = states.gather(1, idx)[:, 0]
    ctx = states[:, -1, :, :(n - 1) * c]
    sig_f = sigmas[level_f]  # [B, F]
    talk, listen = projector(batch["talk"], batch["listen"])
    out = context_forward(student, ref, ctx, cur, float(sigma_to_timestep(float(sigmas[-1]))),
                          sigma_to_timestep(sig_f), talk, listen)
    pred = predicted_x0(out, cur.float(), sig_f.view(b, 1, f, 1, 1), student.cfg.prediction)
    err = (pred - x0.float()).pow(2)
    return err.mean(), err.detach().mean(dim=(1, 3, 4)), level_f


# --- trajectory pairs on disk -----------------------------------------------------------------------------
def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class TrajectoryPairs:
    """Teacher trajectory pairs for windows of a corpus split, cached in shards of ``pair_batch`` pairs."""

    def __init__(self, cfg: DistillConfig, teacher: AvatarDiT, teacher_projector, teacher_info: dict,
                 windows, stream: StreamConfig) -> None:
        self.cfg = cfg
        self.teacher = teacher
        self.projector = teacher_projector
        self.windows = windows
        self.keep = few_step_sigmas(stream.timesteps, stream.shift)
        self.grid = trajectory_sigmas(cfg.teacher_steps, cfg.teacher_shift, self.keep)
        _, w_path = run_files(cfg.teacher)
        settings = {"teacher": _file_digest(w_path), "steps": cfg.teacher_steps, "shift": cfg.teacher_shift,
                    "talk": cfg.talk_scale, "listen": cfg.listen_scale, "seed": cfg.seed, "keep": self.keep,
                    "windows": len(windows), "frames": windows.frames, "split": cfg.split, "shard": cfg.pair_batch,
                    "data": str(Path(cfg.data).resolve())}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        self.dir = Path(cfg.trajectories or Path(cfg.out) / "trajectories") / key
        self.settings = settings
        order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(cfg.seed))
        self.items = [int(i) for i in order[:cfg.pairs]]
        if len(self.items) < cfg.pairs:
            raise UserInputError(f"--pairs {cfg.pairs} asks for more trajectories than the {len(windows)} windows "
                                 f"of split {cfg.split!r}")

    def shard_path(self, s: int) -> Path:
        return self.dir / f"shard_{s:05d}.safetensors"

    @property
    def num_shards(self) -> int:
        return math.ceil(len(self.items) / self.cfg.pair_batch)

    @torch.no_grad()
    def make_shard(self, s: int) -> dict[str, torch.Tensor]:
        """Generate shard ``s`` (deterministic from the run seed and ``s``)."""
        items = self.items[s * self.cfg.pair_batch:(s + 1) * self.cfg.pair_batch]
        batch = collate([self.windows[i] for i in items])
        ref = batch["latents"][:, :, :1]
        shape = batch["latents"][:, :, 1:].shape
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + s)
        noise = torch.randn(shape, generator=g)
        with autocast(self.cfg.device, self.cfg.autocast):
            talk, listen = self.projector(batch["talk"], batch["listen"])
            null_t, null_l = self.projector(torch.zeros_like(batch["talk"]), torch.zeros_like(batch["listen"]))
            states, x0 = teacher_trajectory(self.teacher, ref, noise, self.grid, self.keep, talk=talk.float(),
                                            listen=listen.float(), null_talk=null_t.float(),
                                            null_listen=null_l.float(), talk_scale=self.cfg.talk_scale,
                                            listen_scale=self.cfg.listen_scale)
        return {"items": torch.tensor(items, dtype=torch.long), "states": states.float().contiguous(),
                "x0": x0.float().contiguous()}

    def ensure(self, progress: bool, deadline: float | None = None) -> None:
        """Generate every missing shard (skipping those on disk); stops early at ``deadline`` (monotonic)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "settings.json").write_text(json.dumps(self.settings, indent=1))
        missing = [s for s in range(self.num_shards) if not self.shard_path(s).is_file()]
        for s in tqdm(missing, desc="teacher trajectories", unit="shard", disable=not progress):
            if deadline is not None and time.monotonic() > deadline:
                break
            tensors = self.make_shard(s)
            tmp = self.shard_path(s).with_suffix(".tmp")
            save_file(tensors, str(tmp))
            tmp.replace(self.shard_path(s))

    def load(self) -> dict[str, torch.Tensor]:
        """All cached pairs: ``items [N]``, ``states [N, L, C, F, h, w]``, ``x0 [N, C, F, h, w]``."""
        shards = [load_file(str(self.shard_path(s))) for s in range(self.num_shards) if self.shard_path(s).is_file()]
        if not shards:
            raise UserInputError(f"no teacher trajectories in {self.dir}")
        return {k: torch.cat([sh[k] for sh in shards]) for k in shards[0]}


def pair_batch(pairs: dict[str, torch.Tensor], windows, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """A training batch of the pairs at ``rows``: their trajectories plus the reference and audio windows."""
    items = [windows[int(pairs["items"][r])] for r in rows]
    data = collate([{k: it[k] for k in ("latents", "talk", "listen")} for it in items])
    return {"reference": data["latents"][:, :, :1], "talk": data["talk"], "listen": data["listen"],
            "states": pairs["states"][rows], "x0": pairs["x0"][rows]}


# --- the run ----------------------------------------------------------------------------------------------
class ODERegression(StudentObjective):
    """Regression of the block-causal student onto cached teacher ODE trajectories (:func:`ode_regression_loss`)."""

    desc = "distill ode"
    distributed = True

    def __init__(self, cfg: DistillConfig, out: Path, teacher_info: dict, student_mc, model: AvatarDiT, projector,
                 pairs: dict, windows) -> None:
        super().__init__(cfg, out, teacher_info, student_mc)
        self.pairs, self.windows, self.stream = pairs, windows, student_mc.stream
        self.modules = {"model": model, "projector": projector}
        params = list(model.parameters()) + list(projector.parameters())
        self.optimizers = {"optimizer": (adamw(params, cfg.lr, cfg.weight_decay), params)}
        self.generator.manual_seed(cfg.seed + 1)
        n_levels = pairs["states"].shape[1]
        self.columns = ["loss", "grad_norm"] + [f"mse_l{k}" for k in range(n_levels)] + ["pairs"]

    def train_step(self, trainer: Trainer) -> dict | None:
        """The global batch's rows and chunk levels are drawn on every rank alike; each rank regresses its
        micro-batches (docs/distributed.md). Equal micro-batches: the global mean is the mean of their means."""
        b = self.cfg.batch
        rows = torch.randint(len(self.pairs["items"]), (b,), generator=self.generator)
        states = self.pairs["states"]
        level = draw_levels(b, states.shape[1], states.shape[3], self.stream, self.generator)
        slices = trainer.shards(b)
        n_levels = states.shape[1]
        totals = torch.zeros(1 + 2 * n_levels, dtype=torch.float64)  # loss, per-level error sums and counts

        def micro_loss(i: int) -> torch.Tensor:
            batch = pair_batch(self.pairs, self.windows, rows[slices[i]])
            with trainer.autocast():
                loss, per_frame, level_f = ode_regression_terms(self.modules["model"], self.modules["projector"],
                                                                batch, self.stream, level[slices[i]])
            totals[0] += float(loss.detach())
            for k in range(n_levels):
                totals[1 + k] += float(per_frame[level_f == k].sum())
                totals[1 + n_levels + k] += float((level_f == k).sum())
            return loss / trainer.cfg.grad_accum

        gn = trainer.backward_step("optimizer", micro_loss)
        totals = trainer.sum_across_ranks(totals)
        if not finite(gn):
            return None
        parts = trainer.dist.world * trainer.cfg.grad_accum
        per_level = {f"mse_l{k}": float(totals[1 + k] / totals[1 + n_levels + k])
                     if totals[1 + n_levels + k] > 0 else float("nan") for k in range(n_levels)}
        return {"loss": float(totals[0]) / parts, **per_level, "grad_norm": gn, "pairs": len(self.pairs["items"])}


def train_ode(cfg: DistillConfig, resume: bool = False, progress: bool = True, on_checkpoint=None) -> dict:
    """Run (or resume) ODE initialisation in ``cfg.out``; returns the last logged row."""
    t_start = time.monotonic()
    out = Path(cfg.out)
    env = dist_env(cfg.device)
    cfg, state = open_run(cfg, resuming(resume, env, out / CHECKPOINT))
    teacher, t_proj, t_info = load_run(cfg.teacher)
    check_teacher(cfg, t_info, f"teacher {cfg.teacher}")
    mc = student_model_config(t_info, cfg)
    frames = int(t_info.get("train", {}).get("frames", 3 * mc.stream.chunk_frames))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    with env.main_first():  # rank 0 encodes features and samples the teacher's trajectories; the others read
        windows = load_windows(cfg, t_info, frames, progress and env.is_main)
        pairs_store = TrajectoryPairs(cfg, teacher, t_proj, t_info, windows, mc.stream)
        pairs_store.ensure(progress and env.is_main, deadline=t_start + 60 * cfg.max_minutes)
    pairs = pairs_store.load()
    del teacher

    init = cfg.init_from or cfg.teacher
    model, projector, i_info = load_init_run(init, cfg)
    check_teacher(cfg, i_info, f"--init-from {init}")
    objective = ODERegression(cfg, out, t_info, mc, model, projector, pairs, windows)
    return fit_student(objective, state, progress, on_checkpoint, t_start)

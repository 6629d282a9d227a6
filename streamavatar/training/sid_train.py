"""Stage 1b — SiD over self-forcing rollouts (paper.md §4 (b), §9.1–9.2).

Each generator step:

1. ``fake_updates`` fake-score updates: a fresh rollout without gradients (random exit step, as the generator
   samples), a random teacher-sized window of it, a σ ~ U(0, 1) (shifted by ``sid_sigma_shift``), and the
   denoising loss of the fake-score network (bidirectional, initialised from the teacher, conditioned like
   the teacher) on that window.
2. One generator update: a rollout (:mod:`~streamavatar.training.self_forcing`) whose exit step carries
   gradients, the same kind of window, σ ~ U(σ_min, σ_max) (shifted by ``sid_sigma_shift``), the teacher's
   guided x0 and the fake score's x0 on the noised window (frozen networks; the gradient flows through their
   inputs to the sample), and the SiD loss
   (:mod:`~streamavatar.training.sid`). EMA of the student.

**Scoring rollouts longer than the teacher.** The teacher is bidirectional over ``reference + 9`` latent frames
(the length it was trained on). A rollout of ``n ≥ 4`` chunks is longer, so each rollout is scored on one
chunk-aligned window of 9 frames drawn uniformly among the rollout's windows, placed after the reference at
temporal indices 1…9 exactly as in teacher training. The chunk generated under the frozen RAPR layout (chunk 4
and later) is scored whenever the window covers it; over steps every chunk is scored. The fake-score network sees
the same windows.

Conditioning: the student uses its own projector (trained with it); the teacher and the fake-score network use
the teacher's frozen projector. The teacher's score uses talk/listen guidance (``talk_scale``, ``listen_scale``)
with "no audio" = the projector of zero windows (what the teacher's condition dropout trained). Optimisers are Adam
with β = (0, 0.999) for both networks (Self-Forcing's SiD setting).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from streamavatar.diffusion.flow import reference_input
from streamavatar.diffusion.teacher_sampler import guided_prediction
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
    student_model_config,
)
from streamavatar.training.self_forcing import (
    check_rollout_length,
    random_exit_step,
    self_forcing_rollout,
    teacher_window,
)
from streamavatar.training.sid import critic_sigma, fake_score_loss, noised, sid_generator_loss, x0_of
from streamavatar.training.trainer import Trainer, finite


class SiDModels:
    """The frozen teacher (+ projector), the student (+ projector) and the fake-score network."""

    def __init__(self, teacher: AvatarDiT, teacher_projector, student: AvatarDiT, student_projector,
                 fake: AvatarDiT, cfg: DistillConfig, stream) -> None:
        self.teacher, self.t_proj = teacher.eval(), teacher_projector.eval()
        for p in list(self.teacher.parameters()) + list(self.t_proj.parameters()):
            p.requires_grad_(False)
        self.student, self.s_proj, self.fake = student, student_projector, fake
        self.cfg = cfg
        self.stream = stream

    def window_start(self, clip_frames: int, window: int, generator: torch.Generator) -> int:
        c = self.stream.chunk_frames
        starts = range(0, clip_frames - window + 1, c)
        return starts[int(torch.randint(len(starts), (1,), generator=generator))]

    def rollout(self, batch: dict, generator: torch.Generator, exit_step: int):
        """A self-forcing rollout on the batch's references and audio (student projector tokens)."""
        ref = batch["latents"][:, :, :1]
        talk, listen = self.s_proj(batch["talk"], batch["listen"])
        draw = lambda shape: torch.randn(shape, generator=generator)  # noqa: E731 - the sampler's noise source
        return self_forcing_rollout(self.student, self.stream, ref, self.cfg.rollout_chunks, talk=talk,
                                    listen=listen, exit_step=exit_step, noise=draw)

    def conditioned(self, net: AvatarDiT, x_t: torch.Tensor, sigma: torch.Tensor, ref: torch.Tensor,
                    talk: torch.Tensor, listen: torch.Tensor, guided: bool) -> torch.Tensor:
        """x0 of ``net`` on ``[ref | x_t]`` at per-sample ``sigma`` (teacher guidance when ``guided``)."""
        seq, t = reference_input(ref, x_t, sigma)
        if guided:
            null_t, null_l = self.t_proj(torch.zeros_like(talk), torch.zeros_like(listen))
            talk_tok, listen_tok = self.t_proj(talk, listen)
            out = guided_prediction(net, seq, t, talk_audio=talk_tok, listen_audio=listen_tok, null_talk=null_t,
                                    null_listen=null_l, talk_scale=self.cfg.talk_scale,
                                    listen_scale=self.cfg.listen_scale)
        else:
            talk_tok, listen_tok = self.t_proj(talk, listen)
            out = net(seq, t, talk_audio=talk_tok, listen_audio=listen_tok, reference=ref)
        return x0_of(out[:, :, 1:], x_t, sigma, net.cfg.prediction)


def fake_step(m: SiDModels, batch: dict, window: int, g: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Fake-score denoising loss on a window of a fresh no-grad rollout."""
    exit_step = random_exit_step(m.stream, g)
    with torch.no_grad():
        clip = m.rollout(batch, g, exit_step).clip()
    s = m.window_start(clip.shape[2], window, g)
    x_g = clip[:, :, s:s + window].detach()
    b = x_g.shape[0]
    sigma = critic_sigma(b, 0.0, 1.0, m.cfg.sid_sigma_shift, g)
    noise = torch.randn(x_g.shape, generator=g)
    x_t = noised(x_g, sigma, noise)
    ref = batch["latents"][:, :, :1]
    seq, t = reference_input(ref, x_t, sigma)
    with torch.no_grad():
        talk_tok, listen_tok = m.t_proj(batch["talk"][:, s:s + window], batch["listen"][:, s:s + window])
    out = m.fake(seq, t, talk_audio=talk_tok, listen_audio=listen_tok, reference=ref)[:, :, 1:]
    loss = fake_score_loss(out, x_g, noise, m.fake.cfg.prediction)
    return loss, {"fake_loss": float(loss.detach())}


def generator_step(m: SiDModels, batch: dict, window: int, g: torch.Generator) -> tuple[torch.Tensor, dict]:
    """SiD generator loss on a window of a rollout whose exit step carries gradients."""
    exit_step = random_exit_step(m.stream, g)
    clip = m.rollout(batch, g, exit_step).clip()
    loss, stats = sid_clip_loss(m, clip, batch, window, g)
    return loss, {**stats, "exit_step": exit_step}


def sid_clip_loss(m: SiDModels, clip: torch.Tensor, batch: dict, window: int, g: torch.Generator
                  ) -> tuple[torch.Tensor, dict]:
    """SiD generator loss on a random teacher-sized window of a generated ``clip`` (which carries gradients)."""
    s = m.window_start(clip.shape[2], window, g)
    x_g = clip[:, :, s:s + window]
    b = x_g.shape[0]
    cfg = m.cfg
    sigma = critic_sigma(b, cfg.sid_sigma_min, cfg.sid_sigma_max, cfg.sid_sigma_shift, g)
    noise = torch.randn(x_g.shape, generator=g)
    x_t = noised(x_g, sigma, noise)  # not detached: the gradient also flows through both scores' inputs
    ref = batch["latents"][:, :, :1]
    talk, listen = batch["talk"][:, s:s + window], batch["listen"][:, s:s + window]
    m.fake.requires_grad_(False)
    try:
        f_real = m.conditioned(m.teacher, x_t, sigma, ref, talk, listen, guided=True)
        f_fake = m.conditioned(m.fake, x_t, sigma, ref, talk, listen, guided=False)
    finally:
        m.fake.requires_grad_(True)
    loss = sid_generator_loss(x_g.float(), f_real, f_fake, cfg.sid_alpha)
    stats = {"sid_loss": float(loss.detach()), "window": s, "sigma": float(sigma.mean()),
             "score_gap": float((f_real - f_fake).detach().abs().mean())}
    return loss, stats


#: Adam betas of both SiD networks (Self-Forcing's SiD setting).
SID_BETAS = (0.0, 0.999)


class SiDObjective(StudentObjective):
    """SiD: ``fake_updates`` fake-score updates, then one generator update (see the module docstring)."""

    columns = ["sid_loss", "fake_loss", "grad_norm", "fake_grad_norm", "exit_step", "window", "sigma", "score_gap"]

    def __init__(self, cfg: DistillConfig, out: Path, teacher_info: dict, student_mc, m: SiDModels, windows,
                 window: int) -> None:
        super().__init__(cfg, out, teacher_info, student_mc)
        self.m, self.windows, self.window = m, windows, window
        self.desc = f"distill sid ({cfg.fake_updates} fake : 1)"
        self.modules = {"model": m.student, "projector": m.s_proj, "fake": m.fake}
        g_params = list(m.student.parameters()) + list(m.s_proj.parameters())
        f_params = list(m.fake.parameters())
        for p in g_params + f_params:
            p.requires_grad_(True)
        self.optimizers = {"optimizer": (torch.optim.Adam(g_params, lr=cfg.lr, betas=SID_BETAS), g_params),
                           "fake_optimizer": (torch.optim.Adam(f_params, lr=cfg.fake_lr, betas=SID_BETAS), f_params)}
        self.generator.manual_seed(cfg.seed + 2)

    def draw_batch(self) -> dict:
        rows = torch.randint(len(self.windows), (self.cfg.batch,), generator=self.generator)
        return collate([{k: self.windows[int(r)][k] for k in ("latents", "talk", "listen")} for r in rows])

    def train_step(self, trainer: Trainer) -> dict | None:
        g = self.generator
        fake_losses, fgn = [], 0.0
        for _ in range(self.cfg.fake_updates):
            with trainer.autocast():
                f_loss, f_stats = fake_step(self.m, self.draw_batch(), self.window, g)
            fgn = trainer.backward_step("fake_optimizer", f_loss)
            fake_losses.append(f_stats["fake_loss"])
        with trainer.autocast():
            loss, stats = generator_step(self.m, self.draw_batch(), self.window, g)
        gn = trainer.backward_step("optimizer", loss)
        # gradients the generator's loss left on the fake score network
        self.optimizers["fake_optimizer"][0].zero_grad(set_to_none=True)
        if not finite(gn):
            return None
        return {**stats, "fake_loss": sum(fake_losses) / len(fake_losses), "grad_norm": gn, "fake_grad_norm": fgn}


def train_sid(cfg: DistillConfig, resume: bool = False, progress: bool = True, on_checkpoint=None) -> dict:
    """Run (or resume) SiD distillation in ``cfg.out``; returns the last logged row."""
    t_start = time.monotonic()
    out = Path(cfg.out)
    cfg, state = open_run(cfg, resume)
    if state is None and not cfg.init_from:
        raise UserInputError("--phase sid starts from an ODE-initialised student: pass --init-from ODE_RUN")
    teacher, t_proj, t_info = load_run(cfg.teacher)
    check_teacher(cfg, t_info, f"teacher {cfg.teacher}")
    mc = student_model_config(t_info, cfg)
    check_rollout_length(cfg.rollout_chunks, mc.stream)
    window = teacher_window(t_info, mc.stream, cfg.rollout_chunks)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    windows = load_windows(cfg, t_info, cfg.rollout_chunks * mc.stream.chunk_frames, progress)
    init = cfg.init_from or cfg.teacher
    student, s_proj, i_info = load_init_run(init, cfg)
    check_teacher(cfg, i_info, f"--init-from {init}")
    fake = copy.deepcopy(teacher)
    m = SiDModels(teacher, t_proj, student, s_proj, fake, cfg, mc.stream)
    objective = SiDObjective(cfg, out, t_info, mc, m, windows, window)
    return fit_student(objective, state, progress, on_checkpoint, t_start)

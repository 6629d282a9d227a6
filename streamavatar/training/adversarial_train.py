"""Stage 2 — adversarial refinement of the streaming student with D_CA (paper.md §5; losses in
:mod:`~streamavatar.training.adversarial`, discriminator in :mod:`~streamavatar.models.discriminator`).

Each step:

1. (only with ``sid_weight > 0``) ``fake_updates`` fake-score updates exactly as in Stage 1 SiD.
2. **Rollout.** The student generates ``rollout_chunks`` chunks after a real clip's reference with
   :func:`~streamavatar.training.self_forcing.self_forcing_rollout` — the inference sampler, KV cache, sink,
   RAPR and Self-Forcing's gradient truncation (one exit step per rollout, nothing crosses chunks through the
   cache) — conditioned on that clip's talk/listen audio. The default of 6 chunks (18 latent frames) passes the
   first eviction (chunk 4 with sink 4 + window 3), so the discriminator also judges chunks streamed under the
   frozen RAPR layout, where drift shows.
3. **Real clip.** The same corpus window's real latents (same reference, same audio), read through the feature
   cache of the teacher and Stage 1 (``distill.load_windows``).
4. **Critic level.** One σ per sample and one noise draw, shared by the real and the generated clip (as SiDA);
   both enter the discriminator as ``[reference (t = 0) | x_σ]`` with the teacher's audio tokens.
5. **Generator update**: relativistic loss of the local logits (paired frame by frame) plus ``global_weight``
   times that of the consistency logit, plus ``sid_weight`` × the SiD loss on a teacher window of the same
   rollout; the discriminator is frozen for it. EMA of the student.
6. **Discriminator update** on the detached rollout: relativistic loss plus ``r1_weight``·R1 (real) and
   ``r2_weight``·R2 (generated), both by finite differences with ``r_sigma``. This update runs in float32 even
   under bf16 autocast: a difference of two bf16 forwards at ε = 0.01 would be mostly rounding.

One rollout serves both updates (the discriminator sees the generator's output of this step, before its update).
Optimisers: Adam β = (0, 0.999) for all networks (Self-Forcing's setting). Paper schedule (1,400 steps, batch 32,
lr 5e-6) is the dataclass default; the loss weights and the critic-level range are not given in the paper
([UNK], paper.md §5) and are ours.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from streamavatar.config import ModelConfig
from streamavatar.diffusion.flow import reference_input
from streamavatar.errors import UserInputError
from streamavatar.models.discriminator import ConsistencyAwareDiscriminator, DiscriminatorConfig
from streamavatar.training.adversarial import (
    finite_difference_penalty,
    relativistic_d_loss,
    relativistic_g_loss,
)
from streamavatar.training.configs import ADVERSARIAL_PHASE as PHASE
from streamavatar.training.configs import AdversarialConfig
from streamavatar.training.distill import (
    StudentObjective,
    check_teacher,
    collate,
    load_init_run,
    load_run,
    load_windows,
)
from streamavatar.training.self_forcing import check_rollout_length, random_exit_step, teacher_window
from streamavatar.training.sid import critic_sigma, noised
from streamavatar.training.sid_train import SID_BETAS, SiDModels, fake_step, sid_clip_loss
from streamavatar.training.trainer import Trainer, TrainerConfig, finite, open_checkpoint


class AdversarialModels:
    """The frozen teacher (+ projector), the student (+ projector), the discriminator and — with a SiD term —
    the fake-score network (:class:`~streamavatar.training.sid_train.SiDModels` holds the shared parts)."""

    def __init__(self, sid: SiDModels, disc: ConsistencyAwareDiscriminator) -> None:
        self.sid, self.disc = sid, disc

    def judge(self, x_t: torch.Tensor, sigma: torch.Tensor, ref: torch.Tensor, talk_tok: torch.Tensor,
              listen_tok: torch.Tensor):
        """Discriminator logits of noised frames ``x_t`` after the clean reference."""
        seq, t = reference_input(ref, x_t, sigma)
        return self.disc(seq, t, talk_audio=talk_tok, listen_audio=listen_tok, reference=ref)


def adversarial_losses(real, fake, global_weight: float, d_side: bool) -> torch.Tensor:
    """Relativistic loss of paired outputs: local logits frame by frame, plus the weighted global logit."""
    fn = relativistic_d_loss if d_side else relativistic_g_loss
    loss = fn(real.local, fake.local)
    if real.global_ is not None and global_weight:
        loss = loss + global_weight * fn(real.global_, fake.global_)
    return loss


class AdversarialObjective(StudentObjective):
    """Stage 2 on the one :class:`~streamavatar.training.trainer.Trainer` (see the module docstring)."""

    columns = ["g_loss", "d_loss", "g_adv", "d_adv", "r1", "r2", "d_real", "d_fake", "c_real", "c_fake",
               "sid_loss", "fake_loss", "grad_norm", "d_grad_norm", "exit_step", "sigma"]

    def __init__(self, cfg: AdversarialConfig, out: Path, student_info: dict, student_mc: ModelConfig,
                 m: AdversarialModels, windows, window: int) -> None:
        super().__init__(cfg, out, student_info, student_mc)
        self.m, self.windows, self.window = m, windows, window
        kind = "plain discriminator" if cfg.plain_discriminator else "D_CA"
        self.desc = f"adversarial ({kind})"
        s = m.sid
        self.modules = {"model": s.student, "projector": s.s_proj, "disc": m.disc}
        g_params = list(s.student.parameters()) + list(s.s_proj.parameters())
        d_params = list(m.disc.parameters())
        for p in g_params + d_params:
            p.requires_grad_(True)
        self.optimizers = {"optimizer": (torch.optim.Adam(g_params, lr=cfg.lr, betas=SID_BETAS), g_params),
                           "disc_optimizer": (torch.optim.Adam(d_params, lr=cfg.d_lr, betas=SID_BETAS), d_params)}
        if cfg.sid_weight > 0:
            f_params = list(s.fake.parameters())
            for p in f_params:
                p.requires_grad_(True)
            self.modules["fake"] = s.fake
            self.optimizers["fake_optimizer"] = (torch.optim.Adam(f_params, lr=cfg.fake_lr, betas=SID_BETAS),
                                                 f_params)
        self.generator.manual_seed(cfg.seed + 3)

    def draw_batch(self) -> dict:
        rows = torch.randint(len(self.windows), (self.cfg.batch,), generator=self.generator)
        return collate([{k: self.windows[int(r)][k] for k in ("latents", "talk", "listen")} for r in rows])

    def train_step(self, trainer: Trainer) -> dict | None:
        cfg, m, g = self.cfg, self.m, self.generator
        s = m.sid
        stats: dict = {}
        if cfg.sid_weight > 0:
            fake_losses = []
            for _ in range(cfg.fake_updates):
                with trainer.autocast():
                    f_loss, f_stats = fake_step(s, self.draw_batch(), self.window, g)
                trainer.backward_step("fake_optimizer", f_loss)
                fake_losses.append(f_stats["fake_loss"])
            stats["fake_loss"] = sum(fake_losses) / len(fake_losses)
        batch = self.draw_batch()
        exit_step = random_exit_step(s.stream, g)
        ref = batch["latents"][:, :, :1]
        b = ref.shape[0]
        sigma = critic_sigma(b, cfg.critic_sigma_min, cfg.critic_sigma_max, cfg.critic_sigma_shift, g)
        with torch.no_grad():
            talk_tok, listen_tok = s.t_proj(batch["talk"], batch["listen"])
        # --- generator ---
        with trainer.autocast():
            fake = s.rollout(batch, g, exit_step).clip()
            real = batch["latents"][:, :, 1:1 + fake.shape[2]]
            noise = torch.randn(fake.shape, generator=g)
            x_real, x_fake = noised(real, sigma, noise), noised(fake, sigma, noise)
            m.disc.requires_grad_(False)
            try:
                with torch.no_grad():
                    out_r = m.judge(x_real, sigma, ref, talk_tok, listen_tok)
                out_f = m.judge(x_fake, sigma, ref, talk_tok, listen_tok)
            finally:
                m.disc.requires_grad_(True)
            g_adv = adversarial_losses(out_r, out_f, cfg.global_weight, d_side=False)
            g_loss = g_adv
            if cfg.sid_weight > 0:
                sid_loss, sid_stats = sid_clip_loss(s, fake, batch, self.window, g)
                g_loss = g_loss + cfg.sid_weight * sid_loss
                stats["sid_loss"] = sid_stats["sid_loss"]
        gn = trainer.backward_step("optimizer", g_loss)
        if "fake_optimizer" in self.optimizers:  # gradients the SiD term left on the fake score
            self.optimizers["fake_optimizer"][0].zero_grad(set_to_none=True)
        if not finite(gn):
            return None
        # --- discriminator (float32: the finite differences need it) ---
        x_fake = x_fake.detach().float()
        x_real = x_real.float()

        def d_flat(x: torch.Tensor) -> torch.Tensor:
            return m.judge(x, sigma, ref, talk_tok, listen_tok).flat()

        with torch.autocast(trainer.device.type, enabled=False):
            d_r = m.judge(x_real, sigma, ref, talk_tok, listen_tok)
            d_f = m.judge(x_fake, sigma, ref, talk_tok, listen_tok)
            d_adv = adversarial_losses(d_r, d_f, cfg.global_weight, d_side=True)
            r1 = finite_difference_penalty(d_flat, x_real, cfg.r_sigma, g, d_x=d_r.flat())
            r2 = finite_difference_penalty(d_flat, x_fake, cfg.r_sigma, g, d_x=d_f.flat())
            d_loss = d_adv + cfg.r1_weight * r1 + cfg.r2_weight * r2
        dgn = trainer.backward_step("disc_optimizer", d_loss)
        stats.update({
            "g_loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()), "g_adv": float(g_adv.detach()),
            "d_adv": float(d_adv.detach()), "r1": float(r1.detach()), "r2": float(r2.detach()),
            "d_real": float(d_r.local.detach().mean()), "d_fake": float(d_f.local.detach().mean()),
            "grad_norm": gn, "d_grad_norm": dgn, "exit_step": exit_step, "sigma": float(sigma.mean())})
        if d_r.global_ is not None:
            stats.update({"c_real": float(d_r.global_.detach().mean()), "c_fake": float(d_f.global_.detach().mean())})
        return stats


def open_adversarial_run(cfg: AdversarialConfig, resume: bool) -> tuple[AdversarialConfig, dict | None]:
    """The run's config and checkpoint: a fresh run refuses an occupied folder; ``--resume`` reuses the saved
    config (only the stopping limits come from the command line)."""
    state = open_checkpoint(cfg.out, resume)
    if state is None:
        return cfg, None
    saved = state["config"]
    if saved.get("phase") != PHASE:
        raise UserInputError(f"{cfg.out} holds a {saved.get('phase')!r} run, not an adversarial one")
    return replace(AdversarialConfig(**saved), max_minutes=cfg.max_minutes, steps=cfg.steps), state


def train_adversarial(cfg: AdversarialConfig, resume: bool = False, progress: bool = True,
                      on_checkpoint=None) -> dict:
    """Run (or resume) Stage 2 in ``cfg.out``; returns the last logged row."""
    t_start = time.monotonic()
    out = Path(cfg.out)
    cfg, state = open_adversarial_run(cfg, resume)
    teacher, t_proj, t_info = load_run(cfg.teacher)
    check_teacher(cfg, t_info, f"teacher {cfg.teacher}")
    student, s_proj, s_info = load_init_run(cfg.student, cfg)
    check_teacher(cfg, s_info, f"--student {cfg.student}")
    mc = ModelConfig.from_dict(s_info["model"])  # the student's own streaming geometry (sink / RAPR flags)
    check_rollout_length(cfg.rollout_chunks, mc.stream)
    window = teacher_window(t_info, mc.stream, cfg.rollout_chunks)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    windows = load_windows(cfg, t_info, cfg.rollout_chunks * mc.stream.chunk_frames, progress)
    disc = ConsistencyAwareDiscriminator.from_teacher(
        teacher, DiscriminatorConfig(consistency=not cfg.plain_discriminator))
    fake = copy.deepcopy(teacher) if cfg.sid_weight > 0 else None
    sid = SiDModels(teacher, t_proj, student, s_proj, fake, cfg, mc.stream)
    objective = AdversarialObjective(cfg, out, s_info, mc, AdversarialModels(sid, disc), windows, window)
    tcfg = TrainerConfig(steps=cfg.steps, max_minutes=cfg.max_minutes, checkpoint_every=cfg.checkpoint_every,
                         checkpoint_minutes=cfg.checkpoint_minutes, grad_clip=cfg.grad_clip, ema=cfg.ema,
                         device=cfg.device, autocast=cfg.autocast)
    trainer = Trainer(tcfg, objective, out, run_config=asdict(cfg), state=state, progress=progress,
                      on_checkpoint=on_checkpoint, started=t_start)
    return trainer.fit()

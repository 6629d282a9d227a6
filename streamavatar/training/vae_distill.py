"""A small streaming decoder for a Wan VAE's latent space (``streamavatar train vae --distill-from WAN_VAE``).

The paper's bottleneck is the Wan VAE decoder (0.39 s per chunk on an H800, more than the DiT's 0.33 s). This
trains the tiny causal decoder (:mod:`streamavatar.models.tiny_vae`, the one that streams with a per-layer
cache) to decode the latents of a frozen Wan VAE: the Wan encoder makes the latents of random corpus windows;
the target is the Wan decoder's own output of those latents (``--distill-target teacher``, the default: the
student imitates the real decoder, artefacts included) or the true frames (``frames``). The loss is on pixels:
L1 + gradient L1 + (1 − SSIM), as in ``train vae``. The student takes the teacher's latent geometry (channels,
4×8×8 or 4×16×16 stride) and its latent statistics, so normalised latents mean the same to both; it exports to
``RUN/vae`` as a tiny-family VAE directory that any ``--vae`` loads. Its encoder is untrained: latents come from
the Wan encoder (or the DiT), the exported VAE is for decoding.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.errors import UserInputError
from streamavatar.eval.image_metrics import psnr
from streamavatar.models.tiny_vae import TinyVAEConfig
from streamavatar.models.vae import VAEConfig, VideoVAE, load_vae
from streamavatar.training.configs import VAEDistillConfig
from streamavatar.training.trainer import CHECKPOINT, Objective, Trainer, TrainerConfig, open_checkpoint
from streamavatar.training.vae import VAE_BETAS, reconstruction_losses
from streamavatar.training.vae_data import ClipBank, split_videos


def student_config(teacher: VAEConfig) -> VAEConfig:
    """The tiny causal VAE with ``teacher``'s latent channels, stride and latent statistics."""
    if teacher.temporal_stride != K.VAE_TEMPORAL_STRIDE:
        raise UserInputError(f"the teacher VAE has temporal stride {teacher.temporal_stride}; the tiny decoder "
                             f"has {K.VAE_TEMPORAL_STRIDE}")
    try:
        tiny = TinyVAEConfig(latent_channels=teacher.latent_channels, stride=teacher.spatial_stride)
    except ValueError as exc:
        raise UserInputError(f"no tiny decoder for the {teacher.name!r} VAE: {exc}") from None
    return VAEConfig(name=f"tiny-decoder-{teacher.name}", family="tiny", latent_channels=teacher.latent_channels,
                     spatial_stride=teacher.spatial_stride, latents_mean=teacher.latents_mean,
                     latents_std=teacher.latents_std, tiny=tiny)


class DecoderDistillation(Objective):
    """Pixel loss of the student decoder against the teacher's decode (or the frames) of Wan latents."""

    columns = ["loss", "l1", "grad", "ssim_loss", "batch_psnr_db", "grad_norm"]
    desc = "distill vae decoder"
    clock_column = "train_minutes"

    def __init__(self, cfg: VAEDistillConfig, teacher: VideoVAE, student: VideoVAE, bank: ClipBank) -> None:
        super().__init__()
        self.cfg, self.teacher, self.student, self.bank = cfg, teacher, student, bank
        student.net.encoder.requires_grad_(False)  # latents come from the Wan encoder
        teacher.requires_grad_(False)
        self.modules = {"model": student.net}
        params = list(student.net.decoder.parameters())
        self.optimizers = {"opt": (torch.optim.AdamW(params, lr=cfg.lr, betas=VAE_BETAS, weight_decay=1e-4), params)}
        self.rng = np.random.default_rng(cfg.seed)

    def state_dict(self) -> dict:
        return {"np_rng": self.rng.bit_generator.state, "vae_config": self.student.config.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["np_rng"]

    def train_step(self, trainer: Trainer) -> dict | None:
        cfg = self.cfg
        x = self.bank.sample(cfg.batch, cfg.frames, self.rng, crop=cfg.crop or None,
                             crop_step=self.student.config.spatial_stride).to(trainer.device)
        with torch.no_grad(), trainer.autocast():
            z = self.teacher.encode(x)  # normalised; the student shares the statistics
            target = self.teacher.decode(z).float().clamp(-1, 1) if cfg.target == "teacher" else x
        with trainer.autocast():
            recon = self.student.decode_raw_train(self.student.denormalize(z))
        parts = reconstruction_losses(recon, target)
        loss = cfg.w_l1 * parts["l1"] + cfg.w_grad * parts["grad"] + cfg.w_ssim * parts["ssim"]
        gn = trainer.backward_step("opt", loss)
        if not math.isfinite(gn):
            return None
        return {"loss": float(loss.detach()), "l1": float(parts["l1"].detach()),
                "grad": float(parts["grad"].detach()), "ssim_loss": float(parts["ssim"].detach()),
                "batch_psnr_db": float(psnr(recon.detach().float().cpu(), target.cpu()).mean()), "grad_norm": gn}

    def export(self, trainer: Trainer) -> None:
        """``RUN/vae``: the student as a tiny-family VAE directory (bf16)."""
        self.student.save_pretrained(trainer.out / "vae", dtype=torch.bfloat16)


def train_vae_distill(cfg: VAEDistillConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train (or continue) a decoder-distillation run; returns the last logged row and the export path."""
    cfg.validate()
    out = Path(cfg.out)
    state = open_checkpoint(out, resume)
    if state is not None:
        cfg = VAEDistillConfig(**{**state["config"], "minutes": cfg.minutes, "max_steps": cfg.max_steps,
                                  "data": cfg.data, "out": cfg.out})
    teacher = load_vae(cfg.distill_from, preset=cfg.teacher_preset, dtype=torch.float32).eval()
    if teacher.config.family == "tiny":
        raise UserInputError(f"--distill-from {cfg.distill_from} is a {teacher.config.name!r} (tiny) VAE; "
                             "pass a Wan VAE (a directory or an original Wan checkpoint)")
    torch.manual_seed(cfg.seed)
    student = VideoVAE(student_config(teacher.config)).train()
    bank = ClipBank(split_videos(cfg.data, "train"), max_bytes=cfg.max_bytes, seed=cfg.seed, progress=progress)
    h, w = bank.frame_shape[:2]
    side = min(cfg.crop, h, w) if cfg.crop else None
    student.check_video(torch.zeros(1, 3, cfg.frames, side or h, side or w))
    teacher.to(cfg.device)
    objective = DecoderDistillation(cfg, teacher, student, bank)
    tcfg = TrainerConfig(steps=cfg.max_steps or None, max_minutes=cfg.minutes, checkpoint_minutes=cfg.ckpt_minutes,
                         grad_clip=1.0, ema=0.0, log_every=cfg.log_every, log_name="train.csv",
                         clock_spans_resumes=True, device=cfg.device, autocast=cfg.autocast)
    trainer = Trainer(tcfg, objective, out, run_config=asdict(cfg), state=state, progress=progress)
    last = trainer.fit()
    return {**last, "export": str(out / "vae"), "checkpoint": str(out / CHECKPOINT)}

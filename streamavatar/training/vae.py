"""Training of the tiny causal VAE (``streamavatar train vae``).

Loss = L1 + spatial/temporal gradient L1 + (1 - SSIM) + KL (LPIPS needs weights we cannot download), with an
optional patch discriminator (hinge loss). Forward passes run under autocast (bf16 where the device computes it
natively; fp32 master weights).
The run directory holds ``checkpoint.pt`` (model, optimizer, step, elapsed time, RNG states; written
atomically every few minutes), ``train.csv`` / ``eval.csv`` logs and, at the end, ``vae/`` - the exported
bf16 weights + config with measured per-channel latent statistics. ``--resume`` continues a run exactly
where its last checkpoint left it; the time budget counts training time across resumes.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamavatar.errors import UserInputError
from streamavatar.eval.image_metrics import psnr, ssim_map
from streamavatar.eval.vae_eval import evaluate_clips
from streamavatar.models.patch_discriminator import PatchDiscriminator
from streamavatar.models.tiny_vae import patch_pca_
from streamavatar.models.vae import VideoVAE, vae_preset
from streamavatar.training.configs import VAETrainConfig
from streamavatar.training.trainer import CHECKPOINT, Objective, Trainer, TrainerConfig, autocast, open_checkpoint
from streamavatar.training.vae_data import ClipBank, read_video_frames, split_videos

#: AdamW betas of the VAE and of its patch discriminator.
VAE_BETAS = (0.9, 0.99)
DISC_BETAS = (0.5, 0.9)





def mouth_weight_map(mouths: torch.Tensor, height: int, width: int, radius: float) -> torch.Tensor:
    """Gaussian bumps ``[B, 1, T, H, W]`` at per-frame mouth centres ``[B, T, 2]`` (x, y; NaN = none)."""
    ys = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)
    cx, cy = mouths[..., 0, None, None], mouths[..., 1, None, None]
    bump = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius ** 2))
    return torch.nan_to_num(bump, nan=0.0).unsqueeze(1)


def mouth_l1(recon: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 averaged under ``weight`` (zero when no mouth is in view)."""
    total = weight.sum()
    if float(total) <= 0:
        return recon.new_zeros((), dtype=torch.float32)
    return ((recon.float() - target.float()).abs() * weight).sum() / (total * recon.shape[1])


def reconstruction_losses(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1, gradient L1 (x, y and time) and 1 - SSIM of ``[B, 3, T, H, W]`` videos, all in fp32."""
    r, t = recon.float(), target.float()
    l1 = (r - t).abs().mean()
    grad = sum(((r.diff(dim=d) - t.diff(dim=d)).abs().mean()) for d in (2, 3, 4)) / 3
    frames_r = ((r.clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)
    frames_t = ((t + 1) / 2).transpose(1, 2).flatten(0, 1)
    ssim_loss = 1 - ssim_map(frames_r, frames_t).mean()
    return {"l1": l1, "grad": grad, "ssim": ssim_loss}


def seam_l1(recon: torch.Tensor, target: torch.Tensor, grid: int) -> torch.Tensor:
    """L1 between recon's and target's neighbour differences across ``grid``-pixel patch borders of
    ``[B, 3, T, H, W]`` videos whose crops start on the grid (columns/rows ``grid-1 | grid``, ...)."""
    r, t = recon.float(), target.float()
    losses = []
    for dim in (3, 4):
        dr, dt = r.diff(dim=dim), t.diff(dim=dim)
        idx = torch.arange(grid - 1, dr.shape[dim], grid, device=dr.device)
        if idx.numel():
            losses.append((dr.index_select(dim, idx) - dt.index_select(dim, idx)).abs().mean())
    return sum(losses) / len(losses) if losses else r.new_zeros(())


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL divergence of the diagonal Gaussian posterior from N(0, 1)."""
    mu, logvar = mu.float(), logvar.float().clamp(-30, 20)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()


def _lr_factor(step: int, elapsed: float, budget: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% over the wall-clock budget (resume-safe)."""
    frac = min(1.0, elapsed / budget)
    return min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def noised_latents(z: torch.Tensor, latent_std: torch.Tensor, level: float, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """``z`` (raw latents ``[B, C, T, h, w]``) plus Gaussian noise whose standard deviation, in units of each
    channel's ``latent_std`` (``[C]``), is drawn uniformly in ``[0, level]`` for each clip."""
    if level <= 0:
        return z
    b, c = z.shape[:2]
    scale = torch.rand(b, generator=generator) * level
    noise = torch.randn(z.shape, generator=generator)
    return z + (noise * scale.view(b, 1, 1, 1, 1) * latent_std.float().view(1, c, 1, 1, 1)).to(z.dtype)


@torch.no_grad()
def latent_statistics(vae: VideoVAE, bank: ClipBank, frames: int, n: int, seed: int, device: str = "cpu",
                      dtype: str = "auto") -> tuple:
    """Per-channel mean and std of raw latents (posterior means) over ``n`` random windows (autocast ``dtype``
    on ``device``)."""
    rng = np.random.default_rng(seed)
    mus = []
    for _ in range(n):
        with autocast(device, dtype):
            mu, _ = vae.encode_moments(bank.sample(1, frames, rng, flip=False))
        mus.append(mu.float().transpose(0, 1).flatten(1))
    m = torch.cat(mus, dim=1)
    return m.mean(1), m.std(1).clamp_min(1e-3)


def _write_row(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV file (header on creation)."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


class VAEReconstruction(Objective):
    """Reconstruction (+ KL, mouth L1, optional hinge GAN) of the tiny causal VAE on random corpus windows."""

    columns = ["lr", "loss", "l1", "grad", "ssim_loss", "kl", "batch_psnr_db", "mouth_l1", "seam_l1"]
    desc = "train vae"
    clock_column = "train_minutes"
    #: A run without a discriminator checkpointed ``disc: None``; turning the GAN on later starts one fresh.
    optional_state = frozenset({"disc", "disc_opt"})

    def __init__(self, cfg: VAETrainConfig, vae: VideoVAE, bank: ClipBank, eval_clips: list, out: Path,
                 latent_std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg, self.vae, self.bank, self.eval_clips, self.out = cfg, vae, bank, eval_clips, out
        if cfg.latent_noise > 0 and latent_std is None:
            raise ValueError("latent_noise needs the fixed per-channel latent std")
        self.latent_std = latent_std
        self.trained = vae.net.decoder if cfg.decoder_only else vae.net
        if cfg.decoder_only:
            vae.net.encoder.requires_grad_(False)
        self.modules = {"model": vae.net}
        params = list(self.trained.parameters())
        self.optimizers = {"opt": (torch.optim.AdamW(params, lr=cfg.lr, betas=VAE_BETAS, weight_decay=1e-4),
                                   params)}
        self.disc = PatchDiscriminator() if cfg.gan_weight > 0 else None
        if self.disc is not None:
            self.modules["disc"] = self.disc
            d_params = list(self.disc.parameters())
            self.optimizers["disc_opt"] = (torch.optim.AdamW(d_params, lr=cfg.lr / 2, betas=DISC_BETAS), d_params)
        self.rng = np.random.default_rng(cfg.seed)
        self.last_eval: dict | None = None
        self._last_eval_s = 0.0

    # --- checkpoint entries beyond the trainer's (the names wave 1's VAE runs used) -------------------------
    def state_dict(self) -> dict:
        return {"np_rng": self.rng.bit_generator.state, "vae_config": self.vae.config.to_dict(),
                "last_eval": self.last_eval}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["np_rng"]
        if "rng" not in state:  # written before the Trainer: only torch's global generator was saved
            torch.set_rng_state(state["torch_rng"])
        self.last_eval = state.get("last_eval")
        self._last_eval_s = float(state.get("elapsed_s", 0.0))

    def train_step(self, trainer: Trainer) -> dict:
        cfg, vae = self.cfg, self.vae
        lr = cfg.lr * _lr_factor(trainer.step, trainer.seconds, cfg.minutes * 60.0, cfg.warmup_steps)
        opt = self.optimizers["opt"][0]
        for g in opt.param_groups:
            g["lr"] = lr
        x, mouths = self.bank.sample(cfg.batch, cfg.frames, self.rng, crop=cfg.crop or None,
                                     crop_step=vae.config.spatial_stride,
                                     mouth_fraction=cfg.mouth_fraction, with_mouths=True)
        with trainer.autocast():
            with torch.set_grad_enabled(not cfg.decoder_only):
                mu, logvar = vae.encode_moments(x)
            z = mu + torch.exp(0.5 * logvar.float().clamp(-30, 20)) * torch.randn(mu.shape)
            if cfg.latent_noise > 0:
                z = noised_latents(z, self.latent_std, cfg.latent_noise)
            recon = vae.decode_raw_train(z)
        parts = reconstruction_losses(recon, x)
        kl = kl_loss(mu, logvar)
        loss = cfg.w_l1 * parts["l1"] + cfg.w_grad * parts["grad"] + cfg.w_ssim * parts["ssim"]
        if not cfg.decoder_only:
            loss = loss + cfg.w_kl * kl
        if cfg.seam_weight > 0:
            parts["seam"] = seam_l1(recon, x, vae.config.spatial_stride)
            loss = loss + cfg.seam_weight * parts["seam"]
        if cfg.mouth_weight > 0:
            parts["mouth"] = mouth_l1(recon, x, mouth_weight_map(mouths, x.shape[-2], x.shape[-1], cfg.mouth_radius))
            loss = loss + cfg.mouth_weight * parts["mouth"]
        use_gan = self.disc is not None and trainer.step >= cfg.gan_start
        if use_gan:
            with trainer.autocast():
                loss = loss - cfg.gan_weight * self.disc(recon.float()).float().mean()
        trainer.backward_step("opt", loss)
        if use_gan:
            with trainer.autocast():
                d_loss = (F.relu(1 - self.disc(x)).float().mean()
                          + F.relu(1 + self.disc(recon.detach().float())).float().mean())
            trainer.backward_step("disc_opt", d_loss, clip=False)
        if not trainer.logs_step(trainer.step + 1):
            return {}
        logged = {k: round(float(v.detach()), 5) for k, v in parts.items()}
        return {"lr": f"{lr:.3g}", "loss": round(float(loss.detach()), 5), "l1": logged["l1"],
                "grad": logged["grad"], "ssim_loss": logged["ssim"], "kl": round(float(kl.detach()), 4),
                "batch_psnr_db": round(float(psnr(recon.detach(), x).mean()), 3),
                "mouth_l1": logged.get("mouth", 0.0), "seam_l1": logged.get("seam", 0.0)}

    def evaluate(self, trainer: Trainer) -> dict:
        """PSNR/SSIM on the held-out clips, appended to ``eval.csv`` (not counted as training time)."""
        with trainer.paused():
            self.vae.eval()
            with trainer.autocast():
                r = evaluate_clips(self.vae, self.eval_clips)
            self.vae.train()
            row = {"step": trainer.step, "train_minutes": round(trainer.minutes, 3),
                   "val_psnr_db": round(r["psnr_db"], 3), "val_ssim": round(r["ssim"], 4)}
            _write_row(self.out / "eval.csv", row)
        self.last_eval = row
        return row

    def finish(self, trainer: Trainer) -> None:
        self.evaluate(trainer)  # the final checkpoint carries the last evaluation

    def after_step(self, trainer: Trainer) -> None:
        if trainer.seconds - self._last_eval_s >= self.cfg.eval_minutes * 60:
            self.evaluate(trainer)
            self._last_eval_s = trainer.seconds


def _load_init(vae: VideoVAE, init: VideoVAE, source: str) -> None:
    """Copy ``init``'s weights into ``vae``. A decoder refinement stage that ``init`` lacks (weights saved before
    the preset gained one) keeps its identity initialisation, so the network starts as ``init`` exactly."""
    missing, unexpected = vae.net.load_state_dict(init.net.state_dict(), strict=False)
    extra = [k for k in missing if not k.startswith("decoder.refine.")]
    if extra or unexpected:
        raise UserInputError(f"--init-from {source}: its layout does not fit the {vae.config.name!r} preset "
                             f"(missing {extra[:3]}, unexpected {unexpected[:3]})")


def train_vae(cfg: VAETrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train (or continue) a tiny VAE run; returns the final evaluation and paths."""
    cfg.validate()
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT
    if resume and not ckpt_path.is_file():
        raise UserInputError(f"--resume: no {CHECKPOINT} in {out}")
    state = open_checkpoint(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    if state is not None and state.get("vae_config", {}).get("name") != cfg.preset:
        raise UserInputError(f"{ckpt_path} is a {state.get('vae_config', {}).get('name')!r} run, "
                             f"not {cfg.preset!r}")
    torch.manual_seed(cfg.seed)
    vae = VideoVAE(vae_preset(cfg.preset)).train()
    fixed_stats = None
    if cfg.init_from is not None:
        from streamavatar.models.vae import load_vae

        init = load_vae(cfg.init_from, dtype=torch.float32)
        if init.config.name != cfg.preset:
            raise UserInputError(f"--init-from {cfg.init_from} is a {init.config.name!r} VAE, not {cfg.preset!r}")
        _load_init(vae, init, cfg.init_from)
        if cfg.decoder_only:  # the latent space does not move, so neither do its statistics
            fixed_stats = (init.latents_mean.flatten().clone(), init.latents_std.flatten().clone())
    train_bank = ClipBank(split_videos(cfg.data, "train"), max_bytes=cfg.max_bytes, seed=cfg.seed,
                          progress=progress)
    h, w = train_bank.frame_shape[:2]
    vae.check_video(torch.zeros(1, 3, cfg.frames, h, w))
    try:
        eval_videos = split_videos(cfg.data, "val")
    except UserInputError:
        eval_videos = train_bank.paths
    eval_clips = [read_video_frames(p, cfg.eval_frames) for p in eval_videos[:cfg.eval_clips]]
    if cfg.mouth_weight > 0 and not train_bank.has_mouths:
        raise UserInputError("--mouth-weight needs corpus clips with annotations.npz beside each video.mp4")
    objective = VAEReconstruction(cfg, vae, train_bank, eval_clips, out,
                                  latent_std=None if fixed_stats is None else fixed_stats[1])
    tcfg = TrainerConfig(steps=cfg.max_steps or None, max_minutes=cfg.minutes, checkpoint_minutes=cfg.ckpt_minutes,
                         grad_clip=1.0, log_every=cfg.log_every, log_name="train.csv", clock_spans_resumes=True)
    trainer = Trainer(tcfg, objective, out, run_config=asdict(cfg), state=state, progress=progress)
    if state is None and cfg.init_from is None:
        pca_rng = np.random.default_rng(cfg.seed + 2)
        pca_psnr = patch_pca_(vae.net, train_bank.sample(32, cfg.frames, pca_rng, flip=False))
        _write_row(out / "init.csv", {"patch_pca_psnr_db": round(pca_psnr, 3)})
    trainer.fit()

    vae.eval()
    if fixed_stats is not None:
        mean, std = fixed_stats
    else:
        mean, std = latent_statistics(vae, train_bank, cfg.frames, n=64, seed=cfg.seed + 1)
    vae.set_latent_stats(mean, std)
    export = out / "vae"
    vae.save_pretrained(export, dtype=torch.bfloat16)
    return {"steps": trainer.step, "train_minutes": trainer.minutes, "val": objective.last_eval,
            "export": str(export), "checkpoint": str(ckpt_path)}

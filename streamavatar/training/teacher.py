"""Teacher training: bidirectional flow matching on corpus windows (ARCHITECTURE.md §4.2).

``x_σ = (1 − σ)·x0 + σ·ε`` with the velocity target ``ε − x0`` (or x0 itself), one σ per window for all
generated frames, the reference latent as frame 0 at t = 0 (and concatenated on the channels when the preset
says so), classifier-free dropout of talk audio, listen audio and the reference, each on its own, and the
levers a small CPU budget needs (``research/feasibility``): a mouth-region loss weight from the corpus's ground
truth, audio in the per-frame modulation as well as in cross-attention (the ``tiny`` preset), x0 or velocity
prediction, and EMA weights for evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from streamavatar.config import PRESETS, ModelConfig, model_preset
from streamavatar.diffusion.flow import reference_input, shift_sigma
from streamavatar.errors import UserInputError
from streamavatar.models.avatar_model import DIT_PREFIX, PROJECTOR_PREFIX, AvatarModel
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.widen import widen_model
from streamavatar.training.configs import TeacherTrainConfig
from streamavatar.training.distributed import GlobalBatches, RankBatches, dist_env, resuming
from streamavatar.training.trainer import CHECKPOINT, LOG, Objective, Trainer, finite, open_checkpoint, trainer_config

__all__ = ["CHECKPOINT", "CONFIG", "LOG", "WEIGHTS", "TeacherTrainConfig", "train_teacher"]

WEIGHTS = "teacher.safetensors"
CONFIG = "teacher.json"
#: AdamW betas of the teacher and the ODE phase.
ADAM_BETAS = (0.9, 0.99)


def teacher_model_config(cfg: TeacherTrainConfig) -> ModelConfig:
    mc = model_preset(cfg.preset)
    return replace(mc, dit=replace(mc.dit, prediction=cfg.prediction))


def flow_draws(b: int, shape: tuple[int, ...], cfg: TeacherTrainConfig, generator: torch.Generator
               ) -> dict[str, torch.Tensor]:
    """The random draws of a batch of ``b`` windows whose generated latents are ``shape`` (``[C, F, h, w]``):
    σ, the noise and the three classifier-free keep masks, each with the batch first (so a part of the batch
    is a slice of every draw)."""
    sigma = shift_sigma(torch.rand(b, generator=generator), cfg.train_shift)
    noise = torch.randn((b, *shape), generator=generator)

    def keep(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) >= p).float()

    return {"sigma": sigma, "noise": noise, "keep_talk": keep(cfg.drop_talk), "keep_listen": keep(cfg.drop_listen),
            "keep_ref": keep(cfg.drop_reference)}


def flow_matching_terms(model: AvatarDiT, projector, batch: dict, draws: dict[str, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted squared-error sum of a batch (the loss is it over the batch's weight sum) and the
    per-window mean squared error ``[B]`` (detached)."""
    x = batch["latents"]
    b = x.shape[0]
    ref, x0 = x[:, :, :1], x[:, :, 1:]
    sigma, noise = draws["sigma"], draws["noise"]
    s = sigma.view(b, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise
    talk = batch["talk"] * draws["keep_talk"].view(b, 1, 1, 1, 1)
    listen = batch["listen"] * draws["keep_listen"].view(b, 1, 1, 1, 1)
    ref_in = ref * draws["keep_ref"].view(b, 1, 1, 1, 1)
    talk_tokens, listen_tokens = projector(talk, listen)
    seq, t = reference_input(ref_in, xt, sigma)
    out = model(seq, t, talk_audio=talk_tokens, listen_audio=listen_tokens, reference=ref_in)[:, :, 1:]
    target = x0 if model.cfg.prediction == "x0" else noise - x0
    err = (out.float() - target).pow(2).mean(dim=1)  # [B, F, h, w]
    return (err * batch["weight"]).sum(), err.detach().mean(dim=(1, 2, 3))


def flow_matching_loss(model: AvatarDiT, projector, batch: dict, cfg: TeacherTrainConfig,
                       generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Weighted flow-matching loss of one batch of windows (see the module docstring)."""
    x = batch["latents"]
    draws = flow_draws(x.shape[0], tuple(x[:, :, 1:].shape[1:]), cfg, generator)
    weighted, mse = flow_matching_terms(model, projector, batch, draws)
    loss = weighted / batch["weight"].sum()
    return loss, {"loss": float(loss.detach()), "mse": float(mse.mean()), "sigma": float(draws["sigma"].mean())}


def _collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def projector_config(model_cfg: ModelConfig, frontend):
    """The talk/listen projector shape for ``model_cfg``'s DiT fed by ``frontend``'s windows."""
    from streamavatar.models.audio_projector import AudioProjectorConfig

    return AudioProjectorConfig.for_dit(model_cfg.dit, window=frontend.window_size, num_layers=frontend.num_layers,
                                        feature_dim=frontend.feature_dim)


def build_projector(model_cfg: ModelConfig, frontend):
    """A fresh talk/listen projector for ``model_cfg`` and ``frontend`` (and its config)."""
    from streamavatar.models.audio_projector import TalkListenProjector

    pc = projector_config(model_cfg, frontend)
    return TalkListenProjector(pc), pc


def load_training_inputs(cfg: TeacherTrainConfig, split: str, progress: bool):
    """VAE, audio front-end and the cached feature windows of one split."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.models.vae import load_vae
    from streamavatar.training.teacher_data import TeacherWindows, build_feature_cache, features_key

    vae = load_vae(cfg.vae)
    # Distillation passes the teacher's own (possibly non-preset) model and checks the channels in load_windows.
    dit_channels = PRESETS[cfg.preset].dit.latent_channels if cfg.preset in PRESETS else vae.config.latent_channels
    if vae.config.latent_channels != dit_channels:
        raise UserInputError(f"VAE {cfg.vae!r} has {vae.config.latent_channels} latent channels, preset {cfg.preset!r} "
                             f"expects {dit_channels}; pass a matching --vae or --preset")
    frontend = AudioFrontend(AudioConfig(backend=cfg.audio_backend))
    key = features_key(str(cfg.vae), vae, frontend.describe())
    cache = Path(cfg.feature_cache or Path(cfg.out) / "features") / key
    clips = build_feature_cache(cfg.data, split, vae, frontend, cache / split, progress=progress)
    windows = TeacherWindows(clips, frames=cfg.frames, mouth_weight=cfg.mouth_weight,
                             vae_stride=vae.config.spatial_stride, nod_weight=cfg.nod_weight)
    return vae, frontend, windows


class TeacherObjective(Objective):
    """Flow matching of the bidirectional teacher (:func:`flow_matching_loss`) over shuffled corpus windows.

    Global batch ``b`` of step ``s`` is :class:`~streamavatar.training.distributed.GlobalBatches` item ``s``
    (a function of the step, so a resumed run draws what an uninterrupted one does); every rank draws the
    whole batch's noise from the shared generator and trains on its own micro-batches of it."""

    columns = ["loss", "mse", "sigma", "lr", "grad_norm"]
    desc = "teacher"
    distributed = True

    def __init__(self, cfg: TeacherTrainConfig, bundle: AvatarModel, windows, start_step: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.bundle = bundle
        self.windows = windows
        model, projector = bundle.dit, bundle.projector
        self.modules = {"model": model, "projector": projector}
        params = list(model.parameters()) + list(projector.parameters())
        self.optimizers = {"optimizer": (adamw(params, cfg.lr, cfg.weight_decay), params)}
        self.ema_modules = ["model", "projector"]
        self.generator.manual_seed(cfg.seed)
        self.global_batches = GlobalBatches(len(windows), cfg.batch, cfg.seed)
        #: Global batches drawn so far (checkpointed; a dropped step draws one too).
        self.drawn = start_step
        self._micro = None

    def state_dict(self) -> dict:
        return {"batches_drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state.get("batches_drawn", state["step"]))

    def _next_micro_batches(self, trainer: Trainer) -> tuple[list[dict], list[slice]]:
        slices = trainer.shards(self.cfg.batch)
        if self._micro is None:
            sampler = RankBatches(self.global_batches, self.drawn, slices)
            self._micro = iter(DataLoader(self.windows, batch_sampler=sampler, collate_fn=_collate,
                                          num_workers=self.cfg.workers))
        self.drawn += 1
        return [next(self._micro) for _ in slices], slices

    def train_step(self, trainer: Trainer) -> dict | None:
        micro, slices = self._next_micro_batches(trainer)
        shape = tuple(micro[0]["latents"][:, :, 1:].shape[1:])
        draws = flow_draws(self.cfg.batch, shape, self.cfg, self.generator)
        weight_sum = float(trainer.sum_across_ranks(sum(mb["weight"].sum() for mb in micro)))
        # FSDP averages gradients over ranks: each rank's share of the global loss, times the world size
        scale = trainer.dist.world / weight_sum
        totals = torch.zeros(2, dtype=torch.float64)  # weighted error sum, per-window mse sum

        def micro_loss(i: int) -> torch.Tensor:
            part = {k: v[slices[i]] for k, v in draws.items()}
            with trainer.autocast():
                weighted, mse = flow_matching_terms(self.bundle.dit, self.bundle.projector, micro[i], part)
            totals[0] += float(weighted.detach())
            totals[1] += float(mse.sum())
            return weighted * scale

        gn = trainer.backward_step("optimizer", micro_loss)
        totals = trainer.sum_across_ranks(totals)
        if not finite(gn):
            return None
        return {"loss": float(totals[0]) / weight_sum, "mse": float(totals[1]) / self.cfg.batch,
                "sigma": float(draws["sigma"].mean()), "lr": self.cfg.lr, "grad_norm": gn}

    def export(self, trainer: Trainer) -> None:
        """``teacher.safetensors`` (bf16 EMA) + ``teacher.json``."""
        self.bundle.save_pretrained(trainer.out, state_dict=bundle_state(trainer))


def bundle_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The EMA weights of a trainer's ``model`` and ``projector`` in weights-file keys."""
    state = {f"{DIT_PREFIX}{k}": v for k, v in trainer.ema_state("model").items()}
    state.update({f"{PROJECTOR_PREFIX}{k}": v for k, v in trainer.ema_state("projector").items()})
    return state


def adamw(params: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """The optimiser of the teacher and the ODE phase (betas from :data:`ADAM_BETAS`)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=ADAM_BETAS)


def train_teacher(cfg: TeacherTrainConfig, resume: bool = False, progress: bool = True,
                  on_checkpoint=None) -> dict:
    """Train (or resume) a teacher run in ``cfg.out``; returns the last logged row."""
    out = Path(cfg.out)
    env = dist_env(cfg.device)
    state = open_checkpoint(out, resuming(resume, env, out / CHECKPOINT))
    if state is not None:
        saved = TeacherTrainConfig(**state["config"])
        if saved.preset != cfg.preset:
            raise UserInputError(f"checkpoint in {out} is preset {saved.preset!r}, asked for {cfg.preset!r}")
        # the parallel layout may change on resume (world size, micro-batches), the global batch may not
        cfg = replace(saved, max_minutes=cfg.max_minutes, steps=cfg.steps, data=cfg.data, out=cfg.out,
                      grad_accum=cfg.grad_accum, activation_checkpointing=cfg.activation_checkpointing)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    with env.main_first():  # rank 0 encodes the feature cache, the others read it
        _, frontend, windows = load_training_inputs(cfg, cfg.split, progress and env.is_main)
    mc = teacher_model_config(cfg)
    pc = projector_config(mc, frontend)
    # "resolution": the frame size the teacher learned; students inherit it and the engine runs at it
    bundle = AvatarModel(mc, pc, {"train": asdict(cfg), "audio": frontend.describe(), "resolution": windows.resolution},
                         kind="teacher")
    if state is None and cfg.init_from:
        init = AvatarModel.from_pretrained(cfg.init_from)
        init_model = init.dit
        if init_model.cfg.latent_channels < mc.dit.latent_channels:
            # e.g. a tiny (16-channel) run into tiny48: old channels copied, new ones start at zero
            init_model = widen_model(init_model, mc.dit.latent_channels)
        try:
            bundle.dit.load_state_dict(init_model.state_dict())
            bundle.projector.load_state_dict(init.projector.state_dict())
        except RuntimeError as exc:
            raise UserInputError(f"--init-from {cfg.init_from} does not match preset {cfg.preset!r}: "
                                 f"{str(exc).splitlines()[0]}") from None
    start_step = int(state["step"]) if state is not None else 0
    objective = TeacherObjective(cfg, bundle, windows, start_step)
    trainer = Trainer(trainer_config(cfg), objective, out, run_config=asdict(cfg), state=state, progress=progress,
                      on_checkpoint=on_checkpoint)
    if env.is_main:
        bundle.save_config(out)
    return trainer.fit()

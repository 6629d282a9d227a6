"""The settings of every training command, one dataclass each, saved with the run (``--resume`` reuses them).

They live apart from the training code and import nothing heavy (no torch), so that the CLI builds its parser
— one flag per field, :mod:`streamavatar.config_flags` — without loading the training stack. Each is
re-exported by the module that runs it (``training.teacher``, ``training.vae``, ``training.vae_distill``,
``training.distill``, ``training.adversarial_train``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from streamavatar import constants as K
from streamavatar.config import DEFAULT_PRESET, DEFAULT_VAE, StreamConfig
from streamavatar.errors import UserInputError

__all__ = ["AdversarialConfig", "DistillConfig", "TeacherTrainConfig", "VAEDistillConfig", "VAETrainConfig"]

#: Phases of ``train distill``: the ODE initialisation and Self-Forcing-style SiD (Stage 1).
PHASES = ("ode", "sid")
#: Phase name of a Stage 2 run.
ADVERSARIAL_PHASE = "adversarial"
#: Rollout length of Stage 2: two chunks past the first eviction of the default cache (chunk 4).
DEFAULT_ROLLOUT_CHUNKS = 6
#: Perturbation scale of the finite-difference R1/R2 (Self-Forcing's GAN setting, paper.md §9.1).
R1_SIGMA = 0.01
#: What a distilled VAE decoder is trained to output.
VAE_DISTILL_TARGETS = ("teacher", "frames")


@dataclass
class TeacherTrainConfig:
    """Everything a teacher run depends on (saved with the run; ``--resume`` reuses it)."""

    data: str
    out: str
    preset: str = DEFAULT_PRESET
    prediction: str = "x0"
    frames: int = 9
    batch: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.01
    ema: float = 0.995
    grad_clip: float = 1.0
    steps: int = 100_000
    max_minutes: float = 60.0
    checkpoint_every: int = 100
    drop_talk: float = 0.1
    drop_listen: float = 0.1
    drop_reference: float = 0.05
    mouth_weight: float = 8.0
    #: Extra loss weight on latent frames during ground-truth listening nods (the listening-motion lever).
    nod_weight: float = 0.0
    train_shift: float = 1.0
    seed: int = 0
    vae: str = DEFAULT_VAE
    audio_backend: str = K.DEFAULT_AUDIO_BACKEND
    feature_cache: str | None = None
    workers: int = 0
    split: str = "train"
    #: Start from the exported weights of an earlier run (a folder with teacher.safetensors), fresh optimiser.
    init_from: str | None = None
    #: Where the loop runs and its mixed precision (``bf16`` | ``fp16`` | ``fp32``).
    device: str = "cpu"
    autocast: str = "auto"
    #: Micro-batches per optimiser step (``batch`` is the global batch of a step, split over ranks and these).
    grad_accum: int = 1
    #: Recompute the DiT blocks in the backward pass (less activation memory, about a third more compute).
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("drop_talk", "drop_listen", "drop_reference"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserInputError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.mouth_weight < 0 or self.nod_weight < 0:
            raise UserInputError(f"loss weights must be >= 0, got mouth {self.mouth_weight}, nod {self.nod_weight}")
        if self.batch <= 0 or self.lr <= 0 or self.steps <= 0:
            raise UserInputError("batch, lr and steps must be positive")
        if self.prediction not in ("x0", "velocity"):
            raise UserInputError(f"prediction must be 'x0' or 'velocity', got {self.prediction!r}")


@dataclass
class VAETrainConfig:
    """Settings of one VAE training run (saved in the checkpoint)."""

    data: str
    out: str
    preset: str = DEFAULT_VAE
    batch: int = 4
    frames: int = 9
    #: Side of the random square crops trained on (0 = full frames).
    crop: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    minutes: float = 45.0
    max_steps: int = 0
    ckpt_minutes: float = 3.0
    eval_minutes: float = 5.0
    eval_clips: int = 4
    eval_frames: int = 49
    w_l1: float = 1.0
    w_grad: float = 0.5
    w_ssim: float = 0.2
    w_kl: float = 1e-6
    gan_weight: float = 0.0
    gan_start: int = 1000
    seed: int = 0
    max_bytes: float = 1.5e9
    log_every: int = 10
    #: Start from these trained weights instead of scratch: a bundled preset name (``"tiny48"``) or a VAE directory.
    init_from: str | None = None
    #: Train the decoder only: the encoder (and so every latent a DiT was trained on) stays fixed.
    decoder_only: bool = False
    #: Extra L1 weight on a Gaussian bump (``mouth_radius`` px) around each frame's annotated mouth centre.
    mouth_weight: float = 0.0
    mouth_radius: float = 6.0
    #: Fraction of training crops placed over the mouth (corpus clips carry the mouth annotation).
    mouth_fraction: float = 0.0
    #: Decoder robustness to the DiT's latent errors (#22): Gaussian noise of standard deviation drawn uniformly
    #: in ``[0, latent_noise]`` per clip, in units of each channel's latent std, added to the latents the
    #: decoder sees (the frames it must produce stay the true ones). Needs ``decoder_only``.
    latent_noise: float = 0.0
    #: L1 weight on the neighbour differences across the VAE's patch-grid lines (recon against truth): a direct
    #: penalty on the block grid that the blockiness measure counts (``eval/blockiness.py``).
    seam_weight: float = 0.0

    def validate(self) -> None:
        from streamavatar.models.vae import trainable_preset, vae_preset

        if not trainable_preset(self.preset):
            raise UserInputError(f"only the tiny VAE is trained here; Wan VAEs load from checkpoints "
                                 f"(got --preset {self.preset})")
        if self.frames < 5 or (self.frames - 1) % K.VAE_TEMPORAL_STRIDE:
            raise UserInputError(f"--frames must be 1 + 4k with k >= 1 (5, 9, 13, ...), got {self.frames}")
        for name in ("batch", "minutes", "ckpt_minutes", "eval_minutes", "lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserInputError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        stride = vae_preset(self.preset).spatial_stride
        if self.crop < 0 or self.crop % stride:
            raise UserInputError(f"--crop must be 0 (full frames) or a multiple of {stride} (the {self.preset} "
                                 f"stride), got {self.crop}")
        if self.max_steps < 0 or self.eval_clips < 1:
            raise UserInputError("--max-steps must be >= 0 and --eval-clips >= 1")
        if self.decoder_only and self.init_from is None:
            raise UserInputError("--decoder-only needs --init-from (the trained encoder to keep)")
        if not (math.isfinite(self.latent_noise) and self.latent_noise >= 0):
            raise UserInputError(f"--latent-noise must be a number >= 0, got {self.latent_noise}")
        if not (math.isfinite(self.seam_weight) and self.seam_weight >= 0):
            raise UserInputError(f"--seam-weight must be a number >= 0, got {self.seam_weight}")
        if self.latent_noise > 0 and not self.decoder_only:
            raise UserInputError("--latent-noise needs --decoder-only (noise is scaled by the fixed latent "
                                 "statistics of the --init-from encoder)")
        if not (self.mouth_weight >= 0 and self.mouth_radius > 0 and 0 <= self.mouth_fraction <= 1):
            raise UserInputError(f"--mouth-weight must be >= 0, --mouth-radius > 0 and --mouth-fraction in [0, 1]; "
                                 f"got {self.mouth_weight}, {self.mouth_radius}, {self.mouth_fraction}")


@dataclass
class VAEDistillConfig:
    """Settings of one decoder-distillation run (saved in the checkpoint)."""

    data: str
    out: str
    #: The Wan VAE whose latent space is decoded: a VAE directory or an original Wan checkpoint file.
    distill_from: str
    #: For an original checkpoint file: ``wan2.1`` or ``wan2.2`` (a directory says itself).
    teacher_preset: str | None = None
    target: str = "teacher"
    batch: int = 4
    frames: int = 9
    crop: int = 64
    lr: float = 1e-3
    minutes: float = 45.0
    max_steps: int = 0
    ckpt_minutes: float = 3.0
    w_l1: float = 1.0
    w_grad: float = 0.5
    w_ssim: float = 0.2
    seed: int = 0
    max_bytes: float = 1.5e9
    log_every: int = 10
    device: str = "cpu"
    autocast: str = "auto"

    def validate(self) -> None:
        if self.target not in VAE_DISTILL_TARGETS:
            raise UserInputError(f"--distill-target must be one of {list(VAE_DISTILL_TARGETS)}, got {self.target!r}")
        if self.frames < 5 or (self.frames - 1) % K.VAE_TEMPORAL_STRIDE:
            raise UserInputError(f"--frames must be 1 + 4k with k >= 1 (5, 9, 13, ...), got {self.frames}")
        for name in ("batch", "minutes", "ckpt_minutes", "lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserInputError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        if self.max_steps < 0 or self.crop < 0:
            raise UserInputError("--max-steps and --crop must be >= 0")


@dataclass
class DistillConfig:
    """Everything a distillation run depends on (saved with the run; ``--resume`` reuses it)."""

    teacher: str
    data: str
    out: str
    phase: str = "ode"
    #: A run folder (student.json or teacher.json) the student starts from; default the teacher itself.
    init_from: str | None = None
    preset: str = DEFAULT_PRESET
    # --- streaming geometry of the student (ablation flags) ---
    reference_sink: bool = True
    rapr: bool = True
    # --- optimisation ---
    batch: int = 4
    lr: float = 5e-5
    weight_decay: float = 0.0
    ema: float = 0.99
    grad_clip: float = 1.0
    steps: int = 100_000
    max_minutes: float = 60.0
    checkpoint_every: int = 25
    seed: int = 0
    # --- teacher sampling (ODE trajectories and the SiD teacher score) ---
    teacher_steps: int = 40
    teacher_shift: float = 3.0
    talk_scale: float = 3.0
    listen_scale: float = 1.0
    # --- ODE initialisation ---
    pairs: int = 64
    pair_batch: int = 4
    trajectories: str | None = None
    # --- SiD ---
    rollout_chunks: int = 4
    fake_updates: int = 5
    fake_lr: float = 5e-5
    sid_alpha: float = 1.0
    sid_sigma_min: float = 0.02
    sid_sigma_max: float = 0.98
    #: Shift of the critic levels (generator loss and fake-score loss): 1 = uniform σ (the Stage 1 runs),
    #: Self-Forcing uses 5 (``sid.SELF_FORCING_CRITIC_SHIFT``).
    sid_sigma_shift: float = 1.0
    # --- data ---
    feature_cache: str | None = None
    split: str = "train"
    # --- where the loop runs ---
    device: str = "cpu"
    autocast: str = "auto"
    #: ode: micro-batches per optimiser step (``batch`` is the global batch; docs/distributed.md).
    grad_accum: int = 1
    #: ode: recompute the student's DiT blocks in the backward pass.
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise UserInputError(f"phase must be one of {list(PHASES)}, got {self.phase!r}")
        for name in ("batch", "steps", "checkpoint_every", "teacher_steps", "pairs", "pair_batch",
                     "rollout_chunks", "fake_updates"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("lr", "fake_lr", "teacher_shift", "max_minutes", "sid_sigma_shift"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise UserInputError(f"ema must be in [0, 1), got {self.ema}")
        if not 0.0 < self.sid_sigma_min < self.sid_sigma_max <= 1.0:
            raise UserInputError(f"SiD σ range must satisfy 0 < min < max <= 1, got "
                                 f"{self.sid_sigma_min}..{self.sid_sigma_max}")

    def stream(self, base: StreamConfig) -> StreamConfig:
        """The student's streaming geometry: the teacher's, with the ablation flags of this run."""
        return replace(base, reference_sink=self.reference_sink, rapr=self.rapr)


@dataclass
class AdversarialConfig:
    """Everything a Stage 2 run depends on (saved with the run; ``--resume`` reuses it)."""

    student: str
    teacher: str
    data: str
    out: str
    phase: str = ADVERSARIAL_PHASE
    preset: str = DEFAULT_PRESET
    #: The ablation's plain discriminator (local realism head only) instead of D_CA.
    plain_discriminator: bool = False
    rollout_chunks: int = DEFAULT_ROLLOUT_CHUNKS
    # --- optimisation (paper §6: 1.4k steps, batch 32, lr 5e-6) ---
    batch: int = 32
    lr: float = 5e-6
    d_lr: float = 5e-6
    ema: float = 0.99
    grad_clip: float = 1.0
    steps: int = 1400
    max_minutes: float = 60.0
    checkpoint_every: int = 25
    checkpoint_minutes: float = 5.0
    seed: int = 0
    # --- adversarial loss (weights: ours, the paper does not give them) ---
    global_weight: float = 1.0
    r1_weight: float = 0.1
    r2_weight: float = 0.1
    r_sigma: float = R1_SIGMA
    critic_sigma_min: float = 0.02
    critic_sigma_max: float = 0.98
    critic_sigma_shift: float = 1.0
    # --- optional SiD term (Stage 1's objective kept with this weight) ---
    sid_weight: float = 0.0
    fake_updates: int = 1
    fake_lr: float = 5e-6
    sid_alpha: float = 1.0
    sid_sigma_min: float = 0.02
    sid_sigma_max: float = 0.98
    sid_sigma_shift: float = 1.0
    talk_scale: float = 3.0
    listen_scale: float = 3.0
    # --- data and device ---
    feature_cache: str | None = None
    split: str = "train"
    device: str = "cpu"
    autocast: str = "auto"

    def __post_init__(self) -> None:
        if self.phase != ADVERSARIAL_PHASE:
            raise UserInputError(f"not an adversarial run config (phase {self.phase!r})")
        for name in ("batch", "steps", "checkpoint_every", "rollout_chunks", "fake_updates"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("lr", "d_lr", "fake_lr", "max_minutes", "checkpoint_minutes", "r_sigma",
                     "critic_sigma_shift", "sid_sigma_shift"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("global_weight", "r1_weight", "r2_weight", "sid_weight"):
            if getattr(self, name) < 0:
                raise UserInputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise UserInputError(f"ema must be in [0, 1), got {self.ema}")
        for lo, hi in ((self.critic_sigma_min, self.critic_sigma_max), (self.sid_sigma_min, self.sid_sigma_max)):
            if not 0.0 < lo < hi <= 1.0:
                raise UserInputError(f"critic σ range must satisfy 0 < min < max <= 1, got {lo}..{hi}")

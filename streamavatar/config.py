"""Dataclass configs with named presets.

Every number that comes from the paper or from Wan lives in :mod:`streamavatar.constants`; the presets below
only combine them. Presets are looked up by name with :func:`dit_preset` / :func:`stream_preset`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from streamavatar import constants as K

Prediction = Literal["velocity", "x0"]
CacheRefresh = Literal["last_step", "clean_pass"]


@dataclass(frozen=True)
class DiTConfig:
    """Shape of an :class:`~streamavatar.models.dit.AvatarDiT` (Wan2.x layout plus talk/listen audio attention).

    ``latent_channels`` is the VAE latent width (Wan2.1: 16, Wan2.2: 48). With ``reference_concat`` the model's
    input is ``[noisy latent | mask (mask_channels) | reference latent]`` on the channel axis (Wan-I2V style).
    """

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    latent_channels: int
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = K.WAN_TEXT_DIM
    freq_dim: int = K.TIME_FREQ_DIM
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    audio_dim: int = 768
    audio_tokens_per_frame: int = 4
    reference_concat: bool = False
    #: Also add each frame's mean audio token to its time embedding (new keys ``talk_audio_modulation``,
    #: ``listen_audio_modulation``; off for the Wan presets so their keys stay Wan's + audio attention).
    audio_modulation: bool = False
    mask_channels: int = 4
    prediction: Prediction = "velocity"
    rope_theta: float = K.ROPE_THETA

    def __post_init__(self) -> None:
        for name in ("dim", "ffn_dim", "num_heads", "num_layers", "latent_channels", "text_dim", "freq_dim",
                     "audio_dim", "audio_tokens_per_frame"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DiTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.prediction not in ("velocity", "x0"):
            raise ValueError(f"prediction must be 'velocity' or 'x0', got {self.prediction!r}")
        if self.prediction == "velocity" and self.token_width > self.dim:
            raise ValueError(
                f"a token is {self.token_width} wide but the model only {self.dim}: velocity prediction cannot "
                "represent the noise through that bottleneck; use prediction='x0'")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def in_channels(self) -> int:
        """Channels of the patch-embedding input."""
        if self.reference_concat:
            return 2 * self.latent_channels + self.mask_channels
        return self.latent_channels

    @property
    def out_channels(self) -> int:
        return self.latent_channels

    @property
    def token_width(self) -> int:
        """Number of output values one token has to produce."""
        pt, ph, pw = self.patch_size
        return self.out_channels * pt * ph * pw


@dataclass(frozen=True)
class StreamConfig:
    """Streaming geometry: chunk size, steps, Reference Sink, rolling window, RAPR and cache refresh."""

    chunk_frames: int = K.CHUNK_LATENT_FRAMES
    num_steps: int = K.STUDENT_DENOISING_STEPS
    sink_frames: int = K.REFERENCE_SINK_FRAMES
    window_frames: int = K.ROLLING_WINDOW_FRAMES
    reference_sink: bool = True
    rapr: bool = True
    cache_refresh: CacheRefresh = "last_step"
    #: Sigma shift of the few-step schedule (t' = s·t / (1 + (s − 1)·t)).
    shift: float = K.WAN22_SAMPLE_SHIFT
    #: Timesteps (before the shift) of the N student steps, in [0, 1000], decreasing.
    timesteps: tuple[float, ...] = (1000.0, 666.7, 333.3)
    #: Keep the rolling window in a ring buffer so every chunk step has the same shapes (for torch.compile and
    #: CUDA graphs; :class:`~streamavatar.models.kv_cache.RingKVCache`). Same outputs up to summation order.
    ring_cache: bool = False

    def __post_init__(self) -> None:
        if self.chunk_frames <= 0:
            raise ValueError(f"chunk_frames must be positive, got {self.chunk_frames}")
        if self.sink_frames < 1:
            raise ValueError(f"sink_frames must be >= 1 (the reference), got {self.sink_frames}")
        if self.window_frames < 0:
            raise ValueError(f"window_frames must be >= 0, got {self.window_frames}")
        if self.cache_refresh not in ("last_step", "clean_pass"):
            raise ValueError(f"cache_refresh must be 'last_step' or 'clean_pass', got {self.cache_refresh!r}")
        if len(self.timesteps) != self.num_steps:
            raise ValueError(f"{self.num_steps} steps need {self.num_steps} timesteps, got {self.timesteps}")
        if any(not 0 < t <= K.NUM_TRAIN_TIMESTEPS for t in self.timesteps):
            raise ValueError(f"timesteps must lie in (0, {K.NUM_TRAIN_TIMESTEPS}], got {self.timesteps}")
        if list(self.timesteps) != sorted(self.timesteps, reverse=True):
            raise ValueError(f"timesteps must decrease, got {self.timesteps}")
        if self.shift <= 0:
            raise ValueError(f"shift must be positive, got {self.shift}")

    @property
    def cached_frames(self) -> int:
        """Latent frames the cache can hold (sink + window); without a sink the window takes the sink's room."""
        return self.sink_frames + self.window_frames

    @property
    def rapr_max_distance(self) -> int:
        """D: the largest RAPR temporal index, reached once the layout is frozen."""
        return self.sink_frames + self.window_frames + self.chunk_frames - 1


@dataclass(frozen=True)
class ModelConfig:
    """A DiT plus the streaming geometry it runs with (what a preset name stands for)."""

    name: str
    dit: DiTConfig
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Spatial stride of the VAE this DiT's latents come from.
    vae_spatial_stride: int = K.WAN21_VAE_SPATIAL_STRIDE

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        dit = dict(d["dit"])
        dit["patch_size"] = tuple(dit["patch_size"])
        stream = dict(d.get("stream", {}))
        if "timesteps" in stream:
            stream["timesteps"] = tuple(stream["timesteps"])
        return ModelConfig(name=d["name"], dit=DiTConfig(**dit), stream=StreamConfig(**stream),
                           vae_spatial_stride=d.get("vae_spatial_stride", K.WAN21_VAE_SPATIAL_STRIDE))


def _presets() -> dict[str, ModelConfig]:
    tiny = ModelConfig(
        name="tiny",
        dit=DiTConfig(dim=256, ffn_dim=1024, num_heads=4, num_layers=6, latent_channels=16,
                      text_dim=64, freq_dim=K.TIME_FREQ_DIM, audio_dim=256, audio_tokens_per_frame=4,
                      reference_concat=True, mask_channels=1, audio_modulation=True),
        vae_spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
    )
    # The tiny DiT on the tiny48 VAE (48 latent channels, same 4x8x8 stride): only the patch embedding and the
    # output head see the channel count, so the cost per chunk is almost that of ``tiny``.
    tiny48 = replace(tiny, name="tiny48", dit=replace(tiny.dit, latent_channels=K.WAN22_VAE_LATENT_CHANNELS))
    # The tiny DiT on the tiny64s16 VAE (64 channels, 4x16x16, 256x256 video, #22): a 256x256 frame gives the
    # same 16x16 latent grid as 128x128 did through a stride-8 VAE, so a chunk costs what tiny48's does.
    tiny64s16 = replace(tiny, name="tiny64s16", dit=replace(tiny.dit, latent_channels=64),
                        vae_spatial_stride=K.WAN22_VAE_SPATIAL_STRIDE)
    wan21_13b = ModelConfig(
        name="wan2.1-1.3b",
        dit=DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30,
                      latent_channels=K.WAN21_VAE_LATENT_CHANNELS),
        vae_spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
    )
    wan21_14b = ModelConfig(
        name="wan2.1-14b",
        dit=DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40,
                      latent_channels=K.WAN21_VAE_LATENT_CHANNELS),
        vae_spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
    )
    wan22_5b = ModelConfig(
        name="wan2.2-ti2v-5b",
        dit=DiTConfig(dim=3072, ffn_dim=14336, num_heads=24, num_layers=30,
                      latent_channels=K.WAN22_VAE_LATENT_CHANNELS),
        vae_spatial_stride=K.WAN22_VAE_SPATIAL_STRIDE,
    )
    return {c.name: c for c in (tiny, tiny48, tiny64s16, wan21_13b, wan21_14b, wan22_5b)}


PRESETS: dict[str, ModelConfig] = _presets()
#: The preset of the bundled default model; its VAE is the bundled trained ``tiny48``.
DEFAULT_PRESET = "tiny48"
#: The bundled trained VAE the default preset runs on (``streamavatar/assets/vae/tiny48``).
DEFAULT_VAE = "tiny48"


def model_preset(name: str, **stream_overrides) -> ModelConfig:
    """The :class:`ModelConfig` of a named preset
    (``tiny``, ``tiny48``, ``tiny64s16``, ``wan2.1-1.3b``, ``wan2.1-14b``, ``wan2.2-ti2v-5b``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    if stream_overrides:
        cfg = replace(cfg, stream=replace(cfg.stream, **stream_overrides))
    return cfg


def dit_preset(name: str) -> DiTConfig:
    """The :class:`DiTConfig` of a named preset."""
    return model_preset(name).dit

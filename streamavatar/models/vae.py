"""``VideoVAE``: causal video VAE with per-channel latent normalisation and three presets.

* ``tiny`` - :mod:`streamavatar.models.tiny_vae`, trained here (``streamavatar train vae``), loaded from a
  directory with ``config.json`` + ``model.safetensors`` (:meth:`VideoVAE.save_pretrained`).
* ``wan2.1`` (z16, stride 4x8x8) and ``wan2.2`` (z48, stride 4x16x16) - diffusers' ``AutoencoderKLWan`` with
  the original checkpoints (``Wan2.1_VAE.pth`` / ``Wan2.2_VAE.pth``, original or diffusers naming) loaded
  from a local path by :func:`load_wan_vae`.

Videos are ``[B, 3, 1 + 4k, H, W]`` in [-1, 1]; latents are ``[B, z, 1 + k, H/s, W/s]``, normalised per channel
as ``(mu - mean) / std``. Streaming decode lives in :mod:`streamavatar.models.vae_streaming`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from streamavatar import constants as K
from streamavatar.config import DEFAULT_VAE
from streamavatar.errors import UserInputError
from streamavatar.hardware import fast_dtype_name
from streamavatar.models.tiny_vae import TinyCausalVAE, TinyVAEConfig
from streamavatar.models.wan_vae_keys import is_original_naming, original_to_diffusers

Family = Literal["tiny", "wan2.1", "wan2.2"]
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class VAEConfig:
    """A VAE preset: family, latent geometry and per-channel latent statistics."""

    name: str
    family: Family
    latent_channels: int
    spatial_stride: int
    latents_mean: tuple[float, ...]
    latents_std: tuple[float, ...]
    temporal_stride: int = K.VAE_TEMPORAL_STRIDE
    tiny: TinyVAEConfig | None = None
    #: Keyword arguments of diffusers' ``AutoencoderKLWan`` (Wan families only).
    wan_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.latents_mean) != self.latent_channels or len(self.latents_std) != self.latent_channels:
            raise ValueError(f"latents_mean/std need {self.latent_channels} values, got "
                             f"{len(self.latents_mean)}/{len(self.latents_std)}")
        if any(s <= 0 for s in self.latents_std):
            raise ValueError("latents_std must be positive")

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "latent_channels": self.latent_channels,
                "spatial_stride": self.spatial_stride, "temporal_stride": self.temporal_stride,
                "latents_mean": list(self.latents_mean), "latents_std": list(self.latents_std),
                "tiny": self.tiny.to_dict() if self.tiny else None, "wan_kwargs": self.wan_kwargs}

    @staticmethod
    def from_dict(d: dict) -> VAEConfig:
        return VAEConfig(name=d["name"], family=d["family"], latent_channels=d["latent_channels"],
                         spatial_stride=d["spatial_stride"], temporal_stride=d.get("temporal_stride", 4),
                         latents_mean=tuple(d["latents_mean"]), latents_std=tuple(d["latents_std"]),
                         tiny=TinyVAEConfig.from_dict(d["tiny"]) if d.get("tiny") else None,
                         wan_kwargs=dict(d.get("wan_kwargs") or {}))


def _wan_kwargs(base_dim: int, z: int, mean, std, **extra) -> dict:
    return dict(base_dim=base_dim, z_dim=z, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                temperal_downsample=[False, True, True], latents_mean=list(mean), latents_std=list(std), **extra)


def _presets() -> dict[str, VAEConfig]:
    z = K.WAN21_VAE_LATENT_CHANNELS
    tiny = VAEConfig(name="tiny", family="tiny", latent_channels=z, spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
                     latents_mean=(0.0,) * z, latents_std=(1.0,) * z, tiny=TinyVAEConfig(latent_channels=z))
    wan21 = VAEConfig(name="wan2.1", family="wan2.1", latent_channels=z, spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
                      latents_mean=K.WAN21_VAE_LATENT_MEAN, latents_std=K.WAN21_VAE_LATENT_STD,
                      wan_kwargs=_wan_kwargs(K.WAN21_VAE_BASE_DIM, z, K.WAN21_VAE_LATENT_MEAN,
                                             K.WAN21_VAE_LATENT_STD))
    z22 = K.WAN22_VAE_LATENT_CHANNELS
    p = K.WAN22_VAE_PATCH_SIZE
    wan22 = VAEConfig(name="wan2.2", family="wan2.2", latent_channels=z22, spatial_stride=K.WAN22_VAE_SPATIAL_STRIDE,
                      latents_mean=K.WAN22_VAE_LATENT_MEAN, latents_std=K.WAN22_VAE_LATENT_STD,
                      wan_kwargs=_wan_kwargs(K.WAN22_VAE_BASE_DIM, z22, K.WAN22_VAE_LATENT_MEAN,
                                             K.WAN22_VAE_LATENT_STD, decoder_base_dim=K.WAN22_VAE_DECODER_BASE_DIM,
                                             in_channels=3 * p * p, out_channels=3 * p * p, is_residual=True,
                                             patch_size=p, scale_factor_spatial=K.WAN22_VAE_SPATIAL_STRIDE))
    # The same tiny network with Wan2.2's 48 latent channels at Wan2.1's 4x8x8 stride: a linear (PCA) bound on
    # held-out corpus identities is 25.4 dB at 16 channels and 30.3 dB at 48 (benchmarks/vae_pca_bound.py), and
    # the DiT's cost barely depends on the channel count (only its patch embedding and output head see it).
    z48 = K.WAN22_VAE_LATENT_CHANNELS
    tiny48 = VAEConfig(name="tiny48", family="tiny", latent_channels=z48, spatial_stride=K.WAN21_VAE_SPATIAL_STRIDE,
                       latents_mean=(0.0,) * z48, latents_std=(1.0,) * z48, tiny=TinyVAEConfig(latent_channels=z48))
    # The tiny network at Wan2.2's 4x16x16 compression (the paper's teacher VAE) for 256x256 video: the DiT sees the
    # same 16x16 latent grid as tiny48 at 128x128, so a chunk costs it the same; the convolutions run on the same
    # 64/32/16 grids, with 4x4 pixel-(un)shuffles to and from the frame (issue #22). 64 channels: the PCA bound on
    # held-out 256x256 corpus identities is 27.5 / 28.2 / 29.6 dB at 48 / 64 / 96 channels
    # (benchmarks/vae_pca_bound.py --stride 16), and wider latents were what the small DiT modelled worst (#22).
    # Its decoder ends in a refinement stage at 128x128: without it the stride-16 linear path paints a 16-px grid
    # even on the VAE's own latents (blockiness 4.3 against 0.98 for true frames, docs/vae.md). Saved weights of
    # the earlier layout keep loading: their config.json says refine_width 0.
    s16, z64 = K.WAN22_VAE_SPATIAL_STRIDE, 64
    tiny64s16 = VAEConfig(name="tiny64s16", family="tiny", latent_channels=z64, spatial_stride=s16,
                          latents_mean=(0.0,) * z64, latents_std=(1.0,) * z64,
                          tiny=TinyVAEConfig(latent_channels=z64, stride=s16, refine_width=32))
    return {c.name: c for c in (tiny, tiny48, tiny64s16, wan21, wan22)}


VAE_PRESETS: dict[str, VAEConfig] = _presets()


def vae_preset(name: str) -> VAEConfig:
    """The :class:`VAEConfig` of a preset name (``tiny``, ``tiny48``, ``wan2.1``, ``wan2.2``)."""
    if name not in VAE_PRESETS:
        raise UserInputError(f"unknown VAE preset {name!r}; expected one of {sorted(VAE_PRESETS)}")
    return VAE_PRESETS[name]


def _build_wan(cfg: VAEConfig) -> nn.Module:
    from diffusers import AutoencoderKLWan
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()  # silences the harmless "modules that should be kept in float32: []" note
    return AutoencoderKLWan(**cfg.wan_kwargs)


class TinyFamily:
    """Adapter of the tiny causal VAE (trained here): its network encodes and decodes itself; the streaming
    cache is its list of per-layer ``CausalTimeMix`` tensors and a chunk goes through in one batched call."""

    #: Trained by ``streamavatar train vae`` and bundled with the package.
    trainable = True

    def build(self, config: VAEConfig) -> nn.Module:
        return TinyCausalVAE(config.tiny or TinyVAEConfig(latent_channels=config.latent_channels))

    def encode_moments(self, net: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return net.encode_moments(video)

    def decode(self, net: nn.Module, raw: torch.Tensor) -> torch.Tensor:
        video, _ = net.decode_step(raw, None)
        return video.clamp(-1, 1)

    def decode_step(self, net: nn.Module, raw: torch.Tensor, cache, first: bool) -> tuple[torch.Tensor, object]:
        return net.decode_step(raw, cache)


class WanFamily:
    """Adapter of diffusers' ``AutoencoderKLWan`` (Wan2.1 / Wan2.2, loaded from checkpoints). Streaming drives
    the decoder one latent frame at a time with a ``feat_cache`` list the caller keeps (diffusers' ``decode()``
    clears its cache at start and end, so it cannot stream itself); the stream's first latent frame runs with
    ``first_chunk=True`` exactly as diffusers' own decode loop does."""

    trainable = False

    def build(self, config: VAEConfig) -> nn.Module:
        return _build_wan(config)

    def encode_moments(self, net: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = net._encode(video).chunk(2, dim=1)
        return mu, logvar

    def decode(self, net: nn.Module, raw: torch.Tensor) -> torch.Tensor:
        return net.decode(raw, return_dict=False)[0]

    def decode_step(self, net: nn.Module, raw: torch.Tensor, cache, first: bool) -> tuple[torch.Tensor, object]:
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        if cache is None:
            cache = [None] * net._cached_conv_counts["decoder"]
        x = net.post_quant_conv(raw)
        outs = [net.decoder(x[:, :, i:i + 1], feat_cache=cache, feat_idx=[0], first_chunk=first and i == 0)
                for i in range(x.shape[2])]
        out = torch.cat(outs, dim=2)
        if net.config.patch_size is not None:
            out = unpatchify(out, patch_size=net.config.patch_size)
        return out, cache


#: One adapter per VAE family: nothing outside this table branches on the family.
FAMILIES: dict[str, TinyFamily | WanFamily] = {"tiny": TinyFamily(), "wan2.1": WanFamily(), "wan2.2": WanFamily()}


def trainable_preset(name: str) -> bool:
    """Whether preset ``name`` is of a family trained (and bundled) here."""
    return name in VAE_PRESETS and FAMILIES[VAE_PRESETS[name].family].trainable


class VideoVAE(nn.Module):
    """A causal video VAE behind one interface (encode, decode, streaming decode), whatever the preset."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.adapter = FAMILIES[config.family]
        self.net: nn.Module = self.adapter.build(config)
        c = config.latent_channels
        self.register_buffer("latents_mean", torch.tensor(config.latents_mean).view(1, c, 1, 1, 1), persistent=False)
        self.register_buffer("latents_std", torch.tensor(config.latents_std).view(1, c, 1, 1, 1), persistent=False)

    # --- geometry and input checks -----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def check_video(self, video: torch.Tensor) -> None:
        """Raise :class:`UserInputError` unless ``video`` is ``[B, 3, 1 + 4k, H, W]`` (H, W multiples of the stride)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise UserInputError(f"expected a video [B, 3, frames, H, W], got shape {tuple(video.shape)}")
        f, h, w = video.shape[2:]
        t, s = self.config.temporal_stride, self.config.spatial_stride
        if f < 1 or (f - 1) % t:
            raise UserInputError(f"frame count must be 1 + {t}k (1, 5, 9, 13, ...), got {f}")
        if h % s or w % s or h == 0 or w == 0:
            raise UserInputError(f"height and width must be positive multiples of the spatial stride {s} "
                                 f"({self.config.name}), got {h}x{w}")

    def check_latents(self, z: torch.Tensor) -> None:
        """Raise :class:`UserInputError` unless ``z`` is ``[B, latent_channels, frames, h, w]``."""
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels:
            raise UserInputError(f"expected latents [B, {self.config.latent_channels}, frames, h, w], "
                                 f"got shape {tuple(z.shape)}")

    def num_latent_frames(self, video_frames: int) -> int:
        return 1 + (video_frames - 1) // self.config.temporal_stride

    # --- normalisation -----------------------------------------------------------------------------------
    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        return ((mu.float() - self.latents_mean) / self.latents_std).to(mu.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() * self.latents_std + self.latents_mean).to(self.dtype)

    # --- encode / decode ---------------------------------------------------------------------------------
    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (un-normalised) posterior ``(mu, logvar)`` of a video; differentiable."""
        self.check_video(video)
        return self.adapter.encode_moments(self.net, video.to(self.dtype))

    def encode(self, video: torch.Tensor, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised latents of ``video`` (the posterior mean, or a sample with ``sample=True``)."""
        mu, logvar = self.encode_moments(video)
        if sample:
            # drawn where the generator lives (CPU by default, reproducible across devices), used on mu's device
            gen_device = generator.device if generator is not None else mu.device
            noise = torch.randn(mu.shape, generator=generator, dtype=torch.float32, device=gen_device)
            noise = noise.to(mu.device, mu.dtype)
            mu = mu + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise
        return self.normalize(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, z, 1 + k, h, w]`` -> video ``[B, 3, 1 + 4k, H, W]`` in [-1, 1] (one pass)."""
        self.check_latents(z)
        return self.adapter.decode(self.net, self.denormalize(z))

    def decode_raw_train(self, mu: torch.Tensor) -> torch.Tensor:
        """Differentiable decode of raw latents without clamping (training of the tiny preset)."""
        video, _ = self.net.decode_step(mu, None)
        return video

    def streaming_decoder(self):
        """A :class:`~streamavatar.models.vae_streaming.StreamingDecoder` bound to this VAE."""
        from streamavatar.models.vae_streaming import StreamingDecoder

        return StreamingDecoder(self)

    # --- persistence (tiny preset and any trained variant) -----------------------------------------------
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.bfloat16) -> None:
        """Write ``config.json`` and ``model.safetensors`` (weights cast to ``dtype``)."""
        from safetensors.torch import save_file

        from streamavatar.atomic import atomic_output, atomic_write_text

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to(dtype).contiguous() for k, v in self.net.state_dict().items()}
        with atomic_output(directory / WEIGHTS_FILE) as tmp:  # a stopped export never leaves half a file
            save_file(state, str(tmp))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=1) + "\n")

    @staticmethod
    def from_pretrained(directory: str | Path, expected_preset: str | None = None,
                        dtype: torch.dtype = torch.float32) -> VideoVAE:
        """Load a directory written by :meth:`save_pretrained`; ``expected_preset`` guards against mix-ups."""
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file():
            raise UserInputError(f"{directory} is not a VAE directory: {CONFIG_FILE} is missing")
        config = VAEConfig.from_dict(json.loads(cfg_path.read_text()))
        if expected_preset is not None and config.name != expected_preset:
            raise UserInputError(f"{directory} holds a {config.name!r} VAE, expected {expected_preset!r}")
        vae = VideoVAE(config)
        state = load_file(str(directory / WEIGHTS_FILE))
        _load_exact(vae.net, state, f"{directory / WEIGHTS_FILE}", config.name)
        return vae.to(dtype).eval()

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Replace the per-channel latent statistics (the tiny preset measures them after training)."""
        self.config = replace(self.config, latents_mean=tuple(float(x) for x in mean),
                              latents_std=tuple(float(x) for x in std))
        c = self.config.latent_channels
        dev = self.latents_mean.device
        self.latents_mean = torch.tensor(self.config.latents_mean, device=dev).view(1, c, 1, 1, 1)
        self.latents_std = torch.tensor(self.config.latents_std, device=dev).view(1, c, 1, 1, 1)


def _load_exact(module: nn.Module, state: dict, source: str, preset: str) -> None:
    """Load ``state`` into ``module`` requiring exactly the same keys and shapes; else a clear error."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserInputError(
            f"{source} does not match the {preset!r} VAE: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}) - is it a checkpoint of another preset?")
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        k, got, want = bad[0]
        raise UserInputError(f"{source} does not match the {preset!r} VAE: {len(bad)} tensors have other shapes, "
                             f"e.g. {k} is {got}, expected {want} - is it a checkpoint of another preset?")
    module.load_state_dict(state, strict=True, assign=True)


def build_vae(preset: str, device: str | torch.device | None = None) -> VideoVAE:
    """A randomly initialised VAE of a preset (``device="meta"`` builds the shapes only)."""
    cfg = vae_preset(preset)
    if device is None:
        return VideoVAE(cfg)
    with torch.device(device):
        return VideoVAE(cfg)


def read_checkpoint(path: str | Path) -> dict:
    """Read a ``.pth``/``.pt``/``.ckpt`` (tensors only) or ``.safetensors`` file into a state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a tensor checkpoint"
        raise UserInputError(f"{path} is not a readable tensor checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserInputError(f"{path} does not hold a state dict of tensors")
    return obj


def load_wan_vae(path: str | Path, preset: str = "wan2.1", dtype: torch.dtype = torch.bfloat16) -> VideoVAE:
    """Load an original Wan VAE checkpoint (or its diffusers conversion) from a local file into a preset."""
    if trainable_preset(preset):
        raise UserInputError("load_wan_vae loads the wan2.1/wan2.2 presets; the tiny VAE loads with "
                             "VideoVAE.from_pretrained(directory)")
    return wan_vae_from_state(read_checkpoint(path), preset, dtype, source=str(path))


def wan_vae_from_state(state: dict, preset: str = "wan2.1", dtype: torch.dtype = torch.bfloat16,
                       source: str = "checkpoint") -> VideoVAE:
    """A Wan preset holding ``state`` (original or diffusers names); keys and shapes must match exactly."""
    cfg = vae_preset(preset)
    if trainable_preset(preset):
        raise UserInputError("wan_vae_from_state builds the wan2.1/wan2.2 presets, not tiny")
    if is_original_naming(state):
        try:
            state = original_to_diffusers(state, cfg.family)
        except KeyError as exc:
            raise UserInputError(f"{source} does not match the {preset!r} VAE: unknown parameter {exc}") from exc
    with torch.device("meta"):
        vae = VideoVAE(cfg)
    _load_exact(vae.net, state, source, preset)
    vae.latents_mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)
    vae.latents_std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1)
    return vae.to(dtype).eval()


#: Trained tiny-family VAEs ship under this folder, one sub-folder per preset (``streamavatar train vae`` output, bf16).
BUNDLED_VAE_ROOT = Path(__file__).resolve().parents[1] / "assets" / "vae"
#: The last commit that shipped the trained 16-channel ``tiny`` VAE (it left the tree when ``tiny48`` became the
#: default, to keep the shipped weights under 50 MB).
TINY_VAE_LAST_COMMIT = "5a2c3fe"


def bundled_vae_dir(preset: str = DEFAULT_VAE) -> Path:
    """The folder of the shipped trained weights of a tiny-family preset (it may not exist, see :func:`load_vae`)."""
    return BUNDLED_VAE_ROOT / preset


def load_vae(spec: str | Path = DEFAULT_VAE, preset: str | None = None,
             dtype: torch.dtype | None = None) -> VideoVAE:
    """Load a VAE by spec: a tiny-family preset name (``"tiny48"`` = the bundled trained weights), a saved VAE
    directory, or an original Wan checkpoint file (``preset`` = ``wan2.1`` | ``wan2.2``, default ``wan2.1``).
    ``dtype`` None: bf16 where this CPU computes it natively, else fp32 (:mod:`streamavatar.hardware`)."""
    if dtype is None:
        dtype = torch.bfloat16 if fast_dtype_name("cpu") == "bf16" else torch.float32
    if trainable_preset(str(spec)):  # a bundled preset name, not a path
        folder = bundled_vae_dir(str(spec))
        if not (folder / CONFIG_FILE).is_file():
            hint = ""
            if str(spec) == "tiny":
                hint = (f"; its trained weights left the package when {DEFAULT_VAE!r} became the default. Restore "
                        f"them with `git show {TINY_VAE_LAST_COMMIT}:streamavatar/assets/vae/tiny/model.safetensors "
                        f"> DIR/model.safetensors` (and config.json the same way) and pass DIR, or train one with "
                        f"`streamavatar train vae --preset tiny`")
            raise UserInputError(f"no trained {spec!r} VAE is bundled (looked in {folder}){hint}")
        return VideoVAE.from_pretrained(folder, expected_preset=str(spec), dtype=dtype)
    path = Path(spec)
    if path.is_dir():
        return VideoVAE.from_pretrained(path, expected_preset=preset, dtype=dtype)
    return load_wan_vae(path, preset or "wan2.1", dtype=dtype)

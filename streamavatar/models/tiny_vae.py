"""The ``tiny`` causal video VAE: Wan's latent geometry (z16, stride 4x8x8) built for a 2-core CPU.

Wan's VAE runs 3D convolutions at every video frame and full resolution; on this CPU that costs ~0.2 s per
chunk even for a tiny width (``research/env.md`` §3). This network keeps Wan's contract - frame 0 is encoded
alone, every later latent frame covers 4 video frames, decoding is causal with a cache - but folds the 4 frames
of a group into channels and the 2x2 pixels of a patch into channels, so almost all work is 2D convolution at
1/2 to 1/8 resolution, once per *latent* frame. Information flows across latent frames only through
:class:`CausalTimeMix` layers (the previous latent frame's features, zeros before the first), which makes
streaming decode exact: each layer keeps the last features it saw.

The first group repeats frame 0 four times on the way in; the decoder's first group yields one frame (the last
of its four outputs), so ``1 + 4k`` frames map to ``1 + k`` latent frames and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from streamavatar import constants as K


@dataclass(frozen=True)
class TinyVAEConfig:
    """Shape of the tiny causal VAE. ``stride`` is the spatial compression (8: Wan2.1's 4x8x8; 16: Wan2.2's
    4x16x16); ``widths`` are the channels at strides ``stride/4``, ``stride/2`` and ``stride`` (the latent grid),
    so both strides run their convolutions on the same grids for a 128² (stride 8) or 256² (stride 16) frame."""

    latent_channels: int = K.WAN21_VAE_LATENT_CHANNELS
    widths: tuple[int, int, int] = (64, 128, 192)
    encoder_blocks: int = 1
    decoder_blocks: int = 2
    groups: int = 8
    stride: int = 8
    #: Width of the decoder's output refinement stage (0 = none): a residual per-group network at half the frame
    #: resolution that sees the summed linear + non-linear output, so it can smooth the borders between the
    #: linear path's independently painted ``stride x stride`` patches (issue #22's 16-px grid).
    refine_width: int = 0

    def __post_init__(self) -> None:
        if self.latent_channels <= 0 or any(w <= 0 or w % self.groups for w in self.widths):
            raise ValueError(f"TinyVAEConfig: widths {self.widths} must be positive multiples of groups "
                             f"{self.groups}, latent_channels positive (got {self.latent_channels})")
        if self.stride not in (8, 16):
            raise ValueError(f"TinyVAEConfig: stride must be 8 or 16, got {self.stride}")
        if self.refine_width < 0:
            raise ValueError(f"TinyVAEConfig: refine_width must be >= 0 (0 = no refine stage), got {self.refine_width}")

    @property
    def unshuffle(self) -> int:
        """Pixel-(un)shuffle factor between the frame and the first feature grid (stride / 4)."""
        return self.stride // 4

    @property
    def temporal_stride(self) -> int:
        return K.VAE_TEMPORAL_STRIDE

    @property
    def spatial_stride(self) -> int:
        return self.stride

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> TinyVAEConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return TinyVAEConfig(**d)


class PatchLinear2d(nn.Conv2d):
    """A convolution whose stride equals its kernel (patchify; ``k = 1`` is a per-pixel channel map), computed
    as pixel-unshuffle + one matrix product.

    Same parameters, names and shapes as the :class:`~torch.nn.Conv2d` it replaces, so checkpoints load
    unchanged, and the same result up to float rounding. Why: on Intel CPUs with AMX, oneDNN's bf16 convolution
    with stride = kernel returned wrong values for some channel counts (relative error > 1 for 12 or 16 input
    channels with 8x8 kernels, torch 2.13.0 / oneDNN 3.12, issue #16), which garbled every reference latent.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        n, c, h, w = x.shape
        if h % k or w % k:
            raise ValueError(f"PatchLinear2d: {h}x{w} input is not a multiple of the {k}x{k} patch")
        patches = F.pixel_unshuffle(x, k) if k > 1 else x  # channel order (c, i, j) = the weight's flatten order
        out = F.linear(patches.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
        return out.permute(0, 3, 1, 2)


class ResBlock2d(nn.Module):
    """Pre-norm residual block of two 3x3 convolutions; frames are in the batch axis, so it is per-frame."""

    def __init__(self, dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class CausalTimeMix(nn.Module):
    """Residual mixing of each latent frame with the one before it (zeros before the first).

    Input is ``[B, T, C, H, W]``. ``cache`` is the previous call's last frame (or ``None`` at the start of a
    stream); the layer returns the output and the new cache, so chunked calls equal one call on the whole.
    """

    def __init__(self, dim: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, 2 * dim)
        self.conv = nn.Conv2d(2 * dim, dim, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = x.shape[:2]
        prev_first = torch.zeros_like(x[:, :1]) if cache is None else cache.to(x.dtype)
        prev = torch.cat([prev_first, x[:, :-1]], dim=1)
        pair = torch.cat([x, prev], dim=2).flatten(0, 1)
        out = x + self.conv(F.silu(self.norm(pair))).unflatten(0, (b, t))
        return out, x[:, -1:].detach().clone()


class TinyEncoder(nn.Module):
    """Groups of 4 frames (as 12 channels) -> per-latent-frame ``(mu, logvar)`` with ``2*z`` channels."""

    def __init__(self, cfg: TinyVAEConfig) -> None:
        super().__init__()
        c0, c1, c2 = cfg.widths
        t = cfg.temporal_stride
        u = cfg.unshuffle
        self.unshuffle = u
        self.conv_in = nn.Conv2d(3 * t * u * u, c0, 3, padding=1)  # after a u x u pixel-unshuffle
        self.stage0 = nn.Sequential(*[ResBlock2d(c0, cfg.groups) for _ in range(cfg.encoder_blocks)])
        self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.stage1 = nn.Sequential(*[ResBlock2d(c1, cfg.groups) for _ in range(cfg.encoder_blocks)])
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.stage2 = nn.Sequential(*[ResBlock2d(c2, cfg.groups) for _ in range(cfg.encoder_blocks)])
        self.time_mix = CausalTimeMix(c2, cfg.groups)
        self.stage3 = ResBlock2d(c2, cfg.groups)
        self.norm_out = nn.GroupNorm(cfg.groups, c2)
        self.conv_out = nn.Conv2d(c2, 2 * cfg.latent_channels, 3, padding=1)
        #: Linear path: each stride x stride patch of a group (768 values at stride 8) -> z values;
        #: PCA-initialised before training.
        self.patch_in = PatchLinear2d(3 * t, cfg.latent_channels, cfg.stride)
        with torch.no_grad():
            # The non-linear path starts silent, so an untrained network is exactly its linear (PCA) path.
            self.conv_out.weight.zero_()
            self.conv_out.bias.zero_()
            # Start with a narrow posterior (std e^-4): with unit variance the sampling noise drowns the
            # untrained means and training stalls while the means grow to outshout it.
            self.conv_out.bias[cfg.latent_channels:] = -8.0

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """``groups [B, T, 12, H, W]`` -> moments ``[B, 2z, T, H/s, W/s]`` (whole clip, no cache)."""
        b, t = groups.shape[:2]
        flat = groups.flatten(0, 1)
        linear = self.patch_in(flat)
        x = F.pixel_unshuffle(flat, self.unshuffle)
        x = self.stage0(self.conv_in(x))
        x = self.stage1(self.down1(x))
        x = self.stage2(self.down2(x))
        x, _ = self.time_mix(x.unflatten(0, (b, t)), None)
        x = self.stage3(x.flatten(0, 1))
        x = self.conv_out(F.silu(self.norm_out(x)))
        x = x + F.pad(linear, (0, 0, 0, 0, 0, x.shape[1] - linear.shape[1]))  # linear path feeds mu only
        return x.unflatten(0, (b, t)).transpose(1, 2)


class RefineStage(nn.Module):
    """Residual output refinement of decoded groups ``[N, 12, H, W]`` at ``H/2 x W/2`` (2x2 pixel-unshuffle):
    three 3x3 convolutions (receptive field +-8 px at full resolution), no normalisation (GroupNorm at this size
    cost as much as the convolutions on the CPU).

    Runs per group (no time mixing), so streaming decode stays exact. Its last convolution starts at zero: an
    untrained stage is the identity, and weights trained without it load unchanged."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4 * channels, width, 3, padding=1)
        self.conv_mid = nn.Conv2d(width, width, 3, padding=1)
        self.conv_out = nn.Conv2d(width, 4 * channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv_mid(F.silu(self.conv_in(F.pixel_unshuffle(x, 2)))))
        return x + F.pixel_shuffle(self.conv_out(h), 2)


class TinyDecoder(nn.Module):
    """Latent frames -> groups of 4 frames, with one cache entry per :class:`CausalTimeMix`."""

    def __init__(self, cfg: TinyVAEConfig) -> None:
        super().__init__()
        c0, c1, c2 = cfg.widths
        t = cfg.temporal_stride
        self.conv_in = nn.Conv2d(cfg.latent_channels, c2, 3, padding=1)
        self.time_mix2 = CausalTimeMix(c2, cfg.groups)
        self.stage2 = nn.Sequential(*[ResBlock2d(c2, cfg.groups) for _ in range(cfg.decoder_blocks)])
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.time_mix1 = CausalTimeMix(c1, cfg.groups)
        self.stage1 = nn.Sequential(*[ResBlock2d(c1, cfg.groups) for _ in range(cfg.decoder_blocks)])
        self.up0 = nn.Conv2d(c1, c0, 3, padding=1)
        self.stage0 = nn.Sequential(*[ResBlock2d(c0, cfg.groups) for _ in range(cfg.decoder_blocks)])
        self.norm_out = nn.GroupNorm(cfg.groups, c0)
        u = cfg.unshuffle
        self.unshuffle, self.stride = u, cfg.stride
        self.conv_out = nn.Conv2d(c0, 3 * t * u * u, 3, padding=1)
        #: Linear path: z values -> a stride x stride patch of a group; PCA-initialised before training.
        self.patch_out = PatchLinear2d(cfg.latent_channels, 3 * t * cfg.stride**2, 1)
        with torch.no_grad():
            self.conv_out.weight.zero_()
            self.conv_out.bias.zero_()
        self.refine = RefineStage(3 * t, cfg.refine_width) if cfg.refine_width else None

    #: Number of cache entries :meth:`forward` reads and returns.
    num_caches = 2

    def forward(self, z: torch.Tensor, caches: list[torch.Tensor | None]) -> tuple[torch.Tensor, list]:
        """``z [B, z, T, h, w]`` -> ``groups [B, T, 12, s·h, s·w]`` and the updated caches."""
        b, t = z.shape[0], z.shape[2]
        zf = z.transpose(1, 2).flatten(0, 1)
        linear = F.pixel_shuffle(self.patch_out(zf), self.stride)
        x = self.conv_in(zf)
        x, c2 = self.time_mix2(x.unflatten(0, (b, t)), caches[0])
        x = self.stage2(x.flatten(0, 1))
        x = self.up1(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        x, c1 = self.time_mix1(x.unflatten(0, (b, t)), caches[1])
        x = self.stage1(x.flatten(0, 1))
        x = self.up0(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        x = self.stage0(x)
        x = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(x))), self.unshuffle) + linear
        if self.refine is not None:
            x = self.refine(x)
        return x.unflatten(0, (b, t)), [c2, c1]


def frames_to_groups(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 1+4k, H, W]`` -> ``[B, 1+k, 12, H, W]``: frame 0 repeated 4 times, then groups of 4 frames."""
    b, c, f, h, w = video.shape
    t = K.VAE_TEMPORAL_STRIDE
    padded = torch.cat([video[:, :, :1].expand(b, c, t - 1, h, w), video], dim=2)
    return padded.unflatten(2, (-1, t)).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, t * c, h, w)


def groups_to_frames(groups: torch.Tensor, first_is_reference: bool) -> torch.Tensor:
    """``[B, T, 12, H, W]`` -> ``[B, 3, 4T, H, W]``; with ``first_is_reference`` group 0 yields only its last frame."""
    b, t, _, h, w = groups.shape
    s = K.VAE_TEMPORAL_STRIDE
    video = groups.reshape(b, t, s, 3, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, 3, t * s, h, w)
    return video[:, :, s - 1:] if first_is_reference else video


@torch.no_grad()
def patch_pca_(vae: TinyCausalVAE, videos: torch.Tensor, max_patches: int = 60000) -> float:
    """Set both linear patch paths to the top-z PCA of the group patches of ``videos`` [N, 3, 1+4k, H, W].

    Returns the PSNR (dB) of the pure PCA reconstruction on those videos. An untrained network equals this PCA
    autoencoder (its non-linear paths start at zero), so training starts from a sensible reconstruction.
    """
    groups = frames_to_groups(videos.float()).flatten(0, 1)
    s = vae.cfg.stride
    patches = F.pixel_unshuffle(groups, s).permute(0, 2, 3, 1).reshape(-1, groups.shape[1] * s * s)
    if patches.shape[0] > max_patches:
        idx = torch.randperm(patches.shape[0], generator=torch.Generator().manual_seed(0))[:max_patches]
        patches = patches[idx]
    mean = patches.mean(0)
    _, _, vh = torch.linalg.svd(patches - mean, full_matrices=False)
    z = vae.cfg.latent_channels
    basis = vh[:z]  # [z, 12·s²], orthonormal rows
    enc, dec = vae.encoder.patch_in, vae.decoder.patch_out
    enc.weight.copy_(basis.view(z, groups.shape[1], s, s))
    enc.bias.copy_(-(basis @ mean))
    dec.weight.copy_(basis.T.reshape(-1, z, 1, 1))
    dec.bias.copy_(mean)
    recon = (patches - mean) @ basis.T @ basis + mean
    mse = ((recon.clamp(-1, 1) - patches) / 2).pow(2).mean()
    return float(10 * torch.log10(1 / mse))


class TinyCausalVAE(nn.Module):
    """The tiny preset's network: :class:`TinyEncoder` + :class:`TinyDecoder` on raw (un-normalised) latents."""

    def __init__(self, cfg: TinyVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TinyEncoder(cfg)
        self.decoder = TinyDecoder(cfg)

    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, 1+4k, H, W]`` in [-1, 1] -> ``(mu, logvar)``, each ``[B, z, 1+k, H/8, W/8]``."""
        mu, logvar = self.encoder(frames_to_groups(video)).chunk(2, dim=1)
        return mu, logvar

    def decode_step(self, z: torch.Tensor, caches: list | None) -> tuple[torch.Tensor, list]:
        """Decode latent frames that follow the ones behind ``caches`` (``None`` = start of a stream)."""
        first = caches is None
        groups, new = self.decoder(z, caches if caches is not None else [None] * TinyDecoder.num_caches)
        return groups_to_frames(groups, first_is_reference=first), new

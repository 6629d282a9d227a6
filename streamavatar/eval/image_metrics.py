"""PSNR and SSIM of reconstructed video frames (torch, no external judges).

Both take videos ``[B, 3, T, H, W]`` in [-1, 1] and measure on the [0, 1] scale. SSIM follows Wang et al. 2004
(11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03), averaged over channels, pixels and frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _to_unit(video: torch.Tensor) -> torch.Tensor:
    return ((video.float().clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)  # [B*T, 3, H, W]


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-video PSNR in dB ``[B]`` (MSE over all frames and pixels of a video)."""
    mse = ((recon.float().clamp(-1, 1) - target.float().clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).to(dtype)
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


@torch.autocast("cpu", enabled=False)
def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM map of image batches ``[N, C, H, W]`` in [0, 1] (valid convolution, no padding; always fp32 -
    variances as differences of means lose everything in bf16)."""
    a, b = a.float(), b.float()
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a.dtype).to(a.device)
    mu_a = F.conv2d(a, w, groups=c)
    mu_b = F.conv2d(b, w, groups=c)
    saa = F.conv2d(a * a, w, groups=c) - mu_a**2
    sbb = F.conv2d(b * b, w, groups=c) - mu_b**2
    sab = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))


def ssim(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-video mean SSIM ``[B]`` of videos ``[B, 3, T, H, W]`` in [-1, 1]."""
    b, t = recon.shape[0], recon.shape[2]
    m = ssim_map(_to_unit(recon), _to_unit(target))
    return m.flatten(1).mean(1).view(b, t).mean(1)

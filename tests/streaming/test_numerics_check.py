"""bf16 on a CPU cannot silently garble output (issue #16).

* the patchify layers are a reshape + matrix product, equal to the convolution they replace;
* every tiny VAE preset round-trips the bundled reference image in bf16 and fp32 above stated PSNR floors;
* a model loaded in bf16 checks itself against fp32 and falls back to fp32 when a kernel is wrong (tested by
  injecting a wrong bf16 convolution), with one warning line and a cached verdict;
* ``streamavatar demo`` (subprocess, bf16) writes frames that resemble the bundled reference.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamavatar.data.video_io import read_frames
from streamavatar.models.tiny_vae import PatchLinear2d, patch_pca_
from streamavatar.models.vae import VAE_PRESETS, build_vae, load_vae
from streamavatar.reference_image import load_reference
from streamavatar.streaming.default_assets import bundled_inputs

#: The (input channels, kernel) pairs for which oneDNN's AMX bf16 convolution returned relative errors > 1,
#: plus the layers the tiny VAEs use (12 -> z with 8x8 patches, z -> 768 per pixel).
CASES = [(12, 8), (16, 4), (16, 8), (24, 4), (24, 8), (3, 8), (48, 1), (16, 1)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.mark.parametrize("cin,k", CASES)
def test_patch_linear_equals_convolution(cin, k):
    torch.manual_seed(cin * 10 + k)
    layer = PatchLinear2d(cin, 20, k).double()
    x = torch.randn(2, cin, 4 * k, 3 * k, dtype=torch.float64)
    want = F.conv2d(x, layer.weight, layer.bias, stride=k)
    got = layer(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    # Same parameter names and shapes as nn.Conv2d: checkpoints load unchanged.
    conv = torch.nn.Conv2d(cin, 20, k, stride=k)
    assert {n: p.shape for n, p in conv.named_parameters()} == {n: p.shape for n, p in layer.named_parameters()}
    # bf16 stays close to fp32 (the bug gave relative errors above 1).
    lf = layer.float().requires_grad_(False)
    ref = lf(x.float())
    err = (lf.to(torch.bfloat16)(x.to(torch.bfloat16)).float() - ref).norm() / ref.norm()
    assert float(err) < 0.02


def test_patch_linear_refuses_partial_patches():
    with pytest.raises(ValueError, match="multiple of the 8x8 patch"):
        PatchLinear2d(12, 4, 8)(torch.zeros(1, 12, 12, 16))


def _round_trip_psnr(vae, image: np.ndarray, dtype: torch.dtype) -> float:
    x = torch.from_numpy(image).float().div(127.5).sub(1).permute(2, 0, 1)[None, :, None]
    vae = vae.to(dtype)
    with torch.no_grad():
        out = vae.decode(vae.encode(x.to(dtype))).float()
    frame = ((out[0, :, 0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().numpy()
    return _psnr(frame, image)


#: PSNR floors (dB) of the reference image's round trip; measured on a healthy CPU (AMD EPYC, torch 2.13.0):
#: tiny48 (trained, bundled, 128²) 32.4 fp32 / 32.4 bf16; PCA-initialised on shifted copies of the image:
#: tiny (128²) 25.5 / 25.5, tiny64s16 (256²) 32.7 / 32.7.
FLOORS = {"tiny48": 30.0, "tiny": 23.0, "tiny64s16": 29.0}


@pytest.mark.parametrize("preset", sorted(n for n, c in VAE_PRESETS.items() if c.family == "tiny"))
def test_every_tiny_vae_round_trips_the_reference_in_bf16_and_fp32(preset):
    stride = VAE_PRESETS[preset].spatial_stride
    image = load_reference(bundled_inputs()[0], 16 * stride)  # a 16x16 latent grid, as the default models use
    if preset == "tiny48":
        vae = load_vae(preset, dtype=torch.float32)
    else:  # no trained weights bundled: the PCA-initialised network (its non-linear paths start at zero),
        # fitted on shifted copies of the image so that there are more patches than latent channels
        vae = build_vae(preset)
        shifted = [np.roll(image, (3 * k, 5 * k), axis=(0, 1)) for k in range(9)]
        video = torch.from_numpy(np.stack(shifted)).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
        patch_pca_(vae.net, video)
    floor = FLOORS[preset]
    p32 = _round_trip_psnr(vae, image, torch.float32)
    p16 = _round_trip_psnr(vae, image, torch.bfloat16)
    assert p32 >= floor, (preset, p32)
    assert p16 >= floor and abs(p16 - p32) < 1.5, (preset, p16, p32)


def _garbling_conv2d(real):
    """A bf16 convolution that is wrong the way oneDNN's AMX kernel was: right shape, wrong values."""

    def conv2d(x, weight, bias=None, *args, **kwargs):
        out = real(x, weight, bias, *args, **kwargs)
        if x.dtype == torch.bfloat16:
            g = torch.Generator().manual_seed(0)
            out = out + torch.randn(out.shape, generator=g).to(out.dtype) * (out.float().std() + 1)
        return out

    return conv2d


def test_self_check_falls_back_to_fp32_on_a_wrong_kernel(monkeypatch, tmp_path, capfd):
    from streamavatar.streaming.pipeline import load

    monkeypatch.setenv("STREAMAVATAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STREAMAVATAR_NUMERICS_CHECK", "1")
    monkeypatch.setattr(F, "conv2d", _garbling_conv2d(F.conv2d))
    pipe = load("default", warmup=False, dtype="bf16")  # asked for: "auto" picks fp32 on CPUs without bf16
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if "bf16" in ln and "emulated" not in ln]
    assert len(lines) == 1 and "running in fp32" in lines[0] and "dB" in lines[0], err
    assert pipe.dtype == torch.float32 and pipe.model.dtype == torch.float32 and pipe.vae.dtype == torch.float32
    assert pipe.numerics is not None and not pipe.numerics.ok and pipe.numerics.vae_psnr_db < 30
    assert pipe.describe()["dtype"] == "float32"
    # The verdict is cached: the next load does not run the check again, and still falls back.
    again = load("default", warmup=False, dtype="bf16")
    assert again.numerics.cached and not again.numerics.ok and again.dtype == torch.float32
    # fp32 output is right even with the broken bf16 kernel in place.
    image = load_reference(bundled_inputs()[0], 128)
    with again.session(image) as s:
        frames = s.step().frames
    assert _psnr(frames[-1], image) > 18


def test_self_check_passes_and_keeps_bf16_on_healthy_kernels(monkeypatch, tmp_path):
    from streamavatar.streaming.pipeline import load

    monkeypatch.setenv("STREAMAVATAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STREAMAVATAR_NUMERICS_CHECK", "1")
    pipe = load("default", warmup=False, dtype="bf16")
    assert pipe.numerics.ok and not pipe.numerics.cached and pipe.dtype == torch.bfloat16
    assert pipe.numerics.vae_psnr_db >= 30 and pipe.numerics.dit_rel_error <= 0.1
    assert list((tmp_path / "cache" / "numerics").glob("*.json"))
    assert load("default", warmup=False, dtype="bf16").numerics.cached


def test_demo_output_resembles_the_reference(tmp_path):
    """The user's first command, in the default dtype (bf16 where the CPU has bf16 instructions, else fp32):
    every 12th frame within reach of the reference."""
    out = tmp_path / "demo.mp4"
    r = subprocess.run([sys.executable, "-m", "streamavatar", "demo", "--out", str(out), "--seconds", "2.4"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    frames = read_frames(out)
    reference = load_reference(bundled_inputs()[0], frames.shape[1])
    psnrs = [_psnr(f, reference) for f in frames[::12]]
    assert len(psnrs) >= 5 and min(psnrs) >= 18.0, psnrs

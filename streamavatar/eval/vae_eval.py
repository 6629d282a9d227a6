"""Reconstruction quality of a VAE on whole clips, decoded the way the stream decodes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.eval.image_metrics import psnr, ssim


def usable_frames(n: int, stride: int = K.VAE_TEMPORAL_STRIDE) -> int:
    """The longest ``1 + 4k`` prefix of ``n`` frames."""
    return 1 + (n - 1) // stride * stride


@torch.no_grad()
def reconstruct_streaming(vae, video: torch.Tensor, chunk: int = K.CHUNK_LATENT_FRAMES) -> torch.Tensor:
    """Encode a whole clip, then decode reference + chunks of ``chunk`` latent frames with a StreamingDecoder."""
    z = vae.encode(video.to(vae.dtype))
    dec = vae.streaming_decoder()
    outs = [dec.decode(z[:, :, :1])]
    for s in range(1, z.shape[2], chunk):
        outs.append(dec.decode(z[:, :, s:s + chunk]))
    return torch.cat(outs, dim=2).float()


@torch.no_grad()
def evaluate_clips(vae, clips: list[np.ndarray], max_frames: int | None = None,
                   progress: bool = False) -> dict:
    """Mean per-clip PSNR (dB) and SSIM of streaming reconstructions of uint8 clips ``[T, H, W, 3]``."""
    psnrs, ssims = [], []
    for frames in tqdm(clips, desc="evaluating", disable=not progress, leave=False):
        n = usable_frames(len(frames) if max_frames is None else min(len(frames), max_frames))
        x = torch.from_numpy(np.ascontiguousarray(frames[:n])).permute(3, 0, 1, 2)[None].float()
        x = x / K.PIXEL_HALF_RANGE - 1
        y = reconstruct_streaming(vae, x)
        psnrs.append(float(psnr(y, x)[0]))
        ssims.append(float(ssim(y, x)[0]))
    return {"psnr_db": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "clips": len(clips),
            "psnr_min_db": float(np.min(psnrs)), "psnr_per_clip": psnrs}


def evaluate_split(vae, data: str | Path, split: str = "test", max_clips: int | None = None,
                   max_frames: int | None = None, progress: bool = False) -> dict:
    """:func:`evaluate_clips` on the videos of one corpus split."""
    from streamavatar.data.video_io import read_video_frames, split_videos

    videos = split_videos(data, split)[:max_clips]
    clips = [read_video_frames(p, max_frames) for p in videos]
    out = evaluate_clips(vae, clips, max_frames, progress)
    out["split"] = split
    return out

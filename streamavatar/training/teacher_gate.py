"""The teacher's sync gate: sample held-out windows, decode, measure the mouth, correlate with ground truth.

For each of ``windows`` held-out corpus windows (identities and voices never seen in training) the teacher
generates the window's latent frames from its reference and audio, the VAE decodes them, and the exact
corpus mouth measurement (:mod:`streamavatar.eval.mouth_measure`) reads the mouth opening of every frame.
The gate number is the Pearson r between measured and ground-truth ``mouth_open`` over all generated frames
(pooled); appearance is the PSNR of the generated frames against the real ones (same person, same
background, different motion, so it is a proxy, higher is better).

Usage: ``python -m streamavatar.training.teacher_gate RUN --data CORPUS [--windows 8] [--steps 20]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.diffusion.teacher_sampler import sample_teacher


@torch.no_grad()
def sync_gate(run: str | Path, data: str | Path, windows: int = 8, steps: int = 20, split: str = "val",
              seed: int = 0, talk_scale: float = 1.0, png: str | Path | None = None) -> dict:
    """Mouth-opening correlation and appearance PSNR of a teacher run on held-out windows.

    With ``png`` a picture is written: for each window a row of generated frames above the real ones."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.eval.mouth_measure import measure_clip_mouth
    from streamavatar.models.vae import load_vae
    from streamavatar.training.teacher_data import (
        TeacherWindows,
        _corpus_clips,
        build_feature_cache,
        features_key,
    )
    from streamavatar.training.teacher_sample import load_teacher

    model, projector, info = load_teacher(run)
    train = info["train"]
    vae = load_vae(train["vae"])
    frontend = AudioFrontend(AudioConfig(backend=train["audio_backend"]))
    key = features_key(str(train["vae"]), vae, frontend.describe())
    cache = Path(train["feature_cache"] or Path(run) / "features") / key / split
    clips = build_feature_cache(data, split, vae, frontend, cache, progress=False)
    paths = _corpus_clips(Path(data), split)
    ds = TeacherWindows(clips, frames=int(train["frames"]))
    rng = np.random.default_rng(seed)
    # prefer windows where the agent talks, so the correlation has something to follow
    talky = [i for i in range(len(ds)) if float(ds[i]["talk_mask"].float().mean()) > 0.3] or list(range(len(ds)))
    chosen = rng.choice(talky, size=min(windows, len(talky)), replace=False)
    g = torch.Generator().manual_seed(seed)
    measured, truth, psnr, rows = [], [], [], []
    for i in chosen:
        item = ds[int(i)]
        ci, si = ds.items[int(i)]
        x = item["latents"][None]
        talk, listen = projector(item["talk"][None], item["listen"][None])
        null_t, null_l = projector(torch.zeros_like(item["talk"][None]), torch.zeros_like(item["listen"][None]))
        gen = sample_teacher(model, x[:, :, :1], x.shape[2] - 1, talk_audio=talk, listen_audio=listen, steps=steps,
                             talk_scale=talk_scale, generator=g, null_talk=null_t, null_listen=null_l)
        video = vae.decode(torch.cat([x[:, :, :1], gen], dim=2).to(vae.dtype)).float()[0]
        real = vae.decode(x.to(vae.dtype)).float()[0]
        frames = ((video.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * K.PIXEL_HALF_RANGE).round().byte().numpy()
        real_u8 = ((real.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * K.PIXEL_HALF_RANGE).round().byte().numpy()
        pick = np.linspace(0, len(frames) - 1, 8).round().astype(int)
        rows.append(np.concatenate([np.concatenate(list(frames[pick]), axis=1),
                                    np.concatenate(list(real_u8[pick]), axis=1)], axis=0))
        v0 = si * K.CHUNK_VIDEO_FRAMES
        meta = json.loads((paths[ci] / "meta.json").read_text())
        ann = dict(np.load(paths[ci] / "annotations.npz"))
        ann = {k: v[v0:v0 + len(frames)] for k, v in ann.items()}
        m = measure_clip_mouth(frames, meta, ann)
        measured.append(m.open[1:])
        truth.append(ann["mouth_open"][1:len(frames)])
        mse = float(((video[:, 1:] - real[:, 1:]) ** 2).mean())
        psnr.append(10 * np.log10(4.0 / max(mse, 1e-10)))
    if png is not None:
        from PIL import Image

        Image.fromarray(np.concatenate(rows, axis=0)).save(png)
    mv, tv = np.concatenate(measured), np.concatenate(truth)
    r = float(np.corrcoef(mv, tv)[0, 1]) if mv.std() > 0 and tv.std() > 0 else 0.0
    return {"mouth_r": round(r, 4), "mouth_mae": round(float(np.abs(mv - tv).mean()), 4),
            "appearance_psnr_db": round(float(np.mean(psnr)), 2), "windows": len(chosen), "steps": steps,
            "split": split}


def main() -> None:
    ap = argparse.ArgumentParser(description="sync gate of a teacher run")
    ap.add_argument("run")
    ap.add_argument("--data", required=True)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--split", default="val")
    ap.add_argument("--talk-scale", type=float, default=1.0)
    ap.add_argument("--png", default=None, help="write generated (top) vs real (bottom) frames of each window")
    args = ap.parse_args()
    print(json.dumps(sync_gate(args.run, args.data, args.windows, args.steps, args.split,
                               talk_scale=args.talk_scale, png=args.png)))


if __name__ == "__main__":
    main()

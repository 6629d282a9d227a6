"""How predictable are listening nods from the user's voice? Linear and MLP probes on the teacher's feature cache.

The corpus nods at the user's pauses between sentences and at emphasis peaks (``data/behaviour.py``), with random
amplitude and spacing rules. Targets are the nod envelope of each listening latent frame (mean over its 4 video
frames). Three probes, fitted on the train identities and scored (Pearson r) on the validation identities:

* ridge on the cached Whisper listen-audio windows (last layer, mean over the window) of the frame itself and of
  ``--context`` previous latent frames (what the DiT's per-frame audio tokens plus attention could use);
* a small MLP on the annotated user-speech energy of the last 1.2 s (clean information about pauses; an upper
  reference for what any audio encoder could give).

    PYTHONPATH=. python benchmarks/probe_listen_nod.py --corpus /work/data/corpus --cache CACHE_DIR [--context 3]

``CACHE_DIR`` is a feature-cache folder written by `streamavatar train teacher` (holding ``train/`` and ``val/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))


def clips(corpus: Path, split: str) -> list[str]:
    return [ln.strip() for ln in (corpus / f"{split}.txt").read_text().splitlines() if ln.strip()]


def audio_rows(corpus: Path, cache: Path, split: str, context: int):
    xs, ys = [], []
    for line in clips(corpus, split):
        t = load_file(str(cache / split / f"{Path(line).name}.safetensors"))
        ann = np.load(corpus / line / "annotations.npz")
        feats = t["listen"].float()[:, :, -1].mean(1).numpy()  # [k, dim]
        k = feats.shape[0]
        padded = np.concatenate([np.zeros((context, feats.shape[1])), feats])
        xs_clip = np.concatenate([padded[i:i + k] for i in range(context + 1)], 1)
        nod = ann["nod"][1:1 + 4 * k].reshape(k, 4).mean(1)
        listening = (ann["state"][1:1 + 4 * k].reshape(k, 4) == 2).all(1)
        xs.append(xs_clip[listening])
        ys.append(nod[listening])
    return np.concatenate(xs), np.concatenate(ys)


def ridge_r(xt, yt, xv, yv) -> dict[float, float]:
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    zt, zv = (xt - mu) / sd, (xv - mu) / sd
    zm, ym = zt.mean(0), yt.mean()
    out = {}
    for alpha in (1e2, 1e3, 1e4, 1e5):
        w = np.linalg.solve((zt - zm).T @ (zt - zm) + alpha * np.eye(zt.shape[1]), (zt - zm).T @ (yt - ym))
        out[alpha] = round(pearson((zv - zm) @ w + ym, yv), 3)
    return out


def energy_rows(corpus: Path, split: str, back: int = 30, ahead: int = 4):
    xs, ys = [], []
    for line in clips(corpus, split):
        ann = np.load(corpus / line / "annotations.npz")
        e = ann["user_energy"].astype(np.float32)
        padded = np.concatenate([np.zeros(back, np.float32), e, np.zeros(ahead, np.float32)])
        for t in np.flatnonzero(ann["state"] == 2):
            xs.append(padded[t:t + back + ahead + 1])
            ys.append(ann["nod"][t])
    return torch.tensor(np.array(xs)), torch.tensor(np.array(ys), dtype=torch.float32)


def mlp_r(corpus: Path, epochs: int = 20) -> float:
    torch.manual_seed(0)
    xt, yt = energy_rows(corpus, "train")
    xv, yv = energy_rows(corpus, "val")
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], 128), torch.nn.GELU(), torch.nn.Linear(128, 128),
                              torch.nn.GELU(), torch.nn.Linear(128, 1))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            b = perm[i:i + 256]
            loss = (net(xt[b]).squeeze(1) - yt[b]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return round(pearson(net(xv).squeeze(1).numpy(), yv.numpy()), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--cache", required=True, help="feature-cache folder with train/ and val/")
    ap.add_argument("--context", type=int, nargs="+", default=[0, 3, 6])
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus, cache = Path(args.corpus), Path(args.cache)
    for c in args.context:
        (xt, yt), (xv, yv) = audio_rows(corpus, cache, "train", c), audio_rows(corpus, cache, "val", c)
        r = ridge_r(xt, yt, xv, yv)
        print(f"whisper listen features, own + {c} previous latent frames: val r by ridge alpha {r} "
              f"({len(yt)} / {len(yv)} listening latent frames)", flush=True)
    print(f"MLP on annotated user energy (1.2 s back, 0.16 s ahead): val r {mlp_r(corpus)}")


if __name__ == "__main__":
    main()

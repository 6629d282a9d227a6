"""Training windows for the teacher (and the student): VAE latents + talk/listen audio windows, cached per clip.

Each clip of the synthetic corpus is encoded once:

* the whole clip (``1 + 4k`` frames) through the causal VAE → latents ``[C, 1 + k, h, w]``; a window's generated
  latents are a slice of these (the latents a long stream produces, with its causal context);
* the reference frame of every window start (multiples of one chunk = 12 video frames) alone → one latent each;
* both voices through the audio front-end with the ground-truth talk/listen masks applied after the encoder
  (post-mask), once for the whole clip from its start; chunk-aligned window starts make a window's audio
  windows exactly a slice of the clip's;
* the mouth centre of every video frame, for the mouth-region loss weight, and the ground-truth mouth opening
  for the sync gate;
* the listening-nod envelope of every video frame (0 outside listening), for the listening-motion loss weight;
  caches written before it existed get it from the clip's annotations when they are read.

A window is ``reference + frames`` latent frames (default 1 + 9 = 3 chunks); item ``(clip, start)`` takes video
frame ``start`` as reference and latent frames ``start/4 + 1 … start/4 + frames`` of the clip.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.errors import UserInputError

#: Window starts are chunk-aligned so audio windows slice exactly (one chunk = 12 video frames).
WINDOW_STRIDE = K.CHUNK_VIDEO_FRAMES


@dataclass(frozen=True)
class ClipFeatures:
    """Everything one clip contributes to training (tensors on CPU)."""

    latents: torch.Tensor          # [C, 1 + k, h, w] normalised, bf16
    ref_latents: torch.Tensor      # [n_starts, C, 1, h, w]: frame start·12 encoded alone
    talk: torch.Tensor             # [k, window, layers, dim] bf16 (post-masked)
    listen: torch.Tensor           # same
    mouth_xy: torch.Tensor         # [1 + 4k, 2] float32, pixels
    mouth_open: torch.Tensor       # [1 + 4k] float32 ground truth
    talk_mask: torch.Tensor        # [1 + 4k] bool
    listen_mask: torch.Tensor      # [1 + 4k] bool
    nod: torch.Tensor              # [1 + 4k] float32, listening-nod envelope 0 .. 1


def _corpus_clips(root: Path, split: str) -> list[Path]:
    lst = root / f"{split}.txt"
    if not (root / "index.json").is_file() or not lst.is_file():
        raise UserInputError(f"{root} is not a corpus folder (expected index.json and {split}.txt: "
                             "streamavatar data synth, data prepare or data mix)")
    clips = [root / line.strip() for line in lst.read_text().splitlines() if line.strip()]
    if not clips:
        raise UserInputError(f"split {split!r} of {root} has no clips")
    return clips


def features_key(vae_name: str, vae, audio_describe: dict) -> str:
    """A short hash identifying what the cached features depend on: the VAE's encoder weights and latent
    statistics (not its decoder, so a decoder-only fine-tune keeps the cache) and the audio settings."""
    state = vae.state_dict()
    h = hashlib.sha256(vae_name.encode())
    encoder_side = sorted(k for k in state if "decoder" not in k and "post_quant" not in k)
    for k in encoder_side[:8] + encoder_side[-8:]:
        h.update(k.encode())
        h.update(state[k].float().flatten()[:64].numpy().tobytes())
    for stats in (vae.latents_mean, vae.latents_std):
        h.update(stats.float().flatten().numpy().tobytes())
    h.update(json.dumps(audio_describe, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


@torch.no_grad()
def encode_clip(clip: Path, vae, frontend) -> dict[str, torch.Tensor]:
    """Encode one corpus clip into the tensors of :class:`ClipFeatures`."""
    from streamavatar.data.video_io import read_frames

    frames = read_frames(clip / "video.mp4")
    n = 1 + (len(frames) - 1) // K.VAE_TEMPORAL_STRIDE * K.VAE_TEMPORAL_STRIDE
    frames = frames[:n]
    ann = np.load(clip / "annotations.npz")
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / K.PIXEL_HALF_RANGE - 1
    latents = vae.encode(video.to(vae.dtype))[0]
    starts = list(range(0, n - 1, WINDOW_STRIDE))
    refs = torch.stack([vae.encode(video[:, :, s:s + 1].to(vae.dtype))[0] for s in starts])
    k = latents.shape[1] - 1
    tracks = {}
    for name in ("talk", "listen"):
        pcm, sr = sf.read(clip / f"{name}.wav", dtype="float32")
        mask = ann[f"{name}_mask"][:n].astype(np.float32)
        tracks[name] = frontend.encode(pcm, sr, num_latent_frames=k, mask=mask).windows.to(torch.bfloat16)
    return {
        "latents": latents.to(torch.bfloat16).contiguous(), "ref_latents": refs.to(torch.bfloat16).contiguous(),
        "talk": tracks["talk"].contiguous(), "listen": tracks["listen"].contiguous(),
        "mouth_xy": torch.from_numpy(ann["mouth_center_xy"][:n].astype(np.float32)),
        "mouth_open": torch.from_numpy(ann["mouth_open"][:n].astype(np.float32)),
        "talk_mask": torch.from_numpy(ann["talk_mask"][:n].astype(bool)),
        "listen_mask": torch.from_numpy(ann["listen_mask"][:n].astype(bool)),
        "nod": _nod_track(ann, n),
    }


def _nod_track(ann, n: int) -> torch.Tensor:
    if "nod" not in ann:
        raise UserInputError("the corpus annotations have no 'nod' track; "
                             "regenerate the corpus with `streamavatar data synth`")
    return torch.from_numpy(np.asarray(ann["nod"][:n], dtype=np.float32))


def build_feature_cache(data: str | Path, split: str, vae, frontend, cache_dir: str | Path,
                        progress: bool = True) -> list[ClipFeatures]:
    """Encode (or read back from ``cache_dir``) every clip of a corpus split."""
    root = Path(data)
    clips = _corpus_clips(root, split)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    loaded: dict[Path, ClipFeatures] = {}  # a clip listed more than once (a weighted mixture) is loaded once
    for clip in tqdm(clips, desc=f"features {split}", unit="clip", disable=not progress, leave=False):
        path = cache / f"{clip.name}.safetensors"
        if path in loaded:
            out.append(loaded[path])
            continue
        if path.is_file():
            tensors = load_file(str(path))
            if "nod" not in tensors:
                tensors["nod"] = _nod_track(np.load(clip / "annotations.npz"), tensors["mouth_open"].shape[0])
        else:
            tensors = encode_clip(clip, vae, frontend)
            tmp = path.with_suffix(".tmp")
            save_file(tensors, str(tmp))
            tmp.replace(path)
        loaded[path] = ClipFeatures(**tensors)
        out.append(loaded[path])
    return out


#: Radius of the teacher's mouth-loss bump as a fraction of the frame width: 8 px at 128x128, where the wave-1
#: recipe was tuned; it scales with the frame so a 256x256 face gets the same bump relative to its mouth.
MOUTH_BUMP_RADIUS_FRACTION = 8.0 / 128.0


def mouth_weight_map(mouth_xy: torch.Tensor, latent_hw: tuple[int, int], stride: int, amplitude: float,
                     radius_px: float | None = None) -> torch.Tensor:
    """Loss weights ``[F, h, w]`` = 1 + amplitude · Gaussian bump at each latent frame's mean mouth centre.

    ``mouth_xy`` is ``[F, 4, 2]``: the mouth centre of the 4 video frames each latent frame covers. The bump's
    radius defaults to :data:`MOUTH_BUMP_RADIUS_FRACTION` of the frame width (``w * stride`` pixels)."""
    h, w = latent_hw
    centre = mouth_xy.mean(dim=1) / stride - 0.5  # latent-cell coordinates of the cell centres
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]
    if radius_px is None:
        radius_px = MOUTH_BUMP_RADIUS_FRACTION * w * stride
    r = radius_px / stride
    d2 = (xs - centre[:, 0, None, None]) ** 2 + (ys - centre[:, 1, None, None]) ** 2
    return 1 + amplitude * torch.exp(-d2 / (2 * r * r))


def listen_motion_weight(nod: torch.Tensor, amplitude: float) -> torch.Tensor:
    """Per-latent-frame extra loss weight ``[F, 1, 1]`` = amplitude · mean nod envelope of the frame's 4 video frames.

    ``nod`` is ``[F, 4]``. A nod moves the whole head, so the weight covers the whole frame; it is zero outside
    listening nods, so talking frames and still listening frames keep their weight."""
    return (amplitude * nod.float().mean(dim=1)).view(-1, 1, 1)


class TeacherWindows(Dataset):
    """Windows of ``1 + frames`` latent frames over cached clips (see the module docstring)."""

    def __init__(self, clips: list[ClipFeatures], frames: int = 9, mouth_weight: float = 0.0,
                 vae_stride: int = 8, nod_weight: float = 0.0) -> None:
        if frames <= 0 or frames % K.CHUNK_LATENT_FRAMES:
            raise UserInputError(f"frames must be a positive multiple of {K.CHUNK_LATENT_FRAMES}, got {frames}")
        self.clips = clips
        self.frames = frames
        self.mouth_weight = mouth_weight
        self.nod_weight = nod_weight
        self.vae_stride = vae_stride
        per_start = WINDOW_STRIDE // K.VAE_TEMPORAL_STRIDE
        self.items = [(ci, si) for ci, c in enumerate(clips)
                      for si in range(c.ref_latents.shape[0]) if si * per_start + frames <= c.latents.shape[1] - 1]
        if not self.items:
            raise UserInputError(f"no clip is long enough for windows of 1 + {frames} latent frames")

    @property
    def resolution(self) -> int:
        """Side in pixels of the square frames the clips were encoded from (latent side × VAE stride)."""
        h, w = self.clips[0].latents.shape[-2:]
        if h != w:
            raise UserInputError(f"the corpus frames are not square ({h * self.vae_stride}x{w * self.vae_stride})")
        return int(w) * self.vae_stride

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ci, si = self.items[index]
        c = self.clips[ci]
        j = si * (WINDOW_STRIDE // K.VAE_TEMPORAL_STRIDE)  # latent index of the reference frame's position
        gen = c.latents[:, j + 1:j + 1 + self.frames]
        x = torch.cat([c.ref_latents[si], gen], dim=1).float()
        v0 = j * K.VAE_TEMPORAL_STRIDE  # video frame of the reference
        vid = slice(v0 + 1, v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE)
        mouth = c.mouth_xy[vid].reshape(self.frames, K.VAE_TEMPORAL_STRIDE, 2)
        weight = mouth_weight_map(mouth, tuple(x.shape[-2:]), self.vae_stride, self.mouth_weight)
        if self.nod_weight:
            nod = c.nod[vid].reshape(self.frames, K.VAE_TEMPORAL_STRIDE)
            weight = weight + listen_motion_weight(nod, self.nod_weight)
        return {
            "latents": x,
            "talk": c.talk[j:j + self.frames].float(),
            "listen": c.listen[j:j + self.frames].float(),
            "weight": weight,
            "mouth_open": c.mouth_open[v0:v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE],
            "talk_mask": c.talk_mask[v0:v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE],
            "listen_mask": c.listen_mask[v0:v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE],
            "mouth_xy": c.mouth_xy[v0:v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE],
            "nod": c.nod[v0:v0 + 1 + self.frames * K.VAE_TEMPORAL_STRIDE],
        }

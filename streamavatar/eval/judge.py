"""The judge: a small CNN that reads avatar parameters off a single corpus-style frame.

It regresses the renderer's controls (mouth opening and width, head yaw/pitch/roll, the four arm angles), classifies
the conversational state (idle/talking/listening) and embeds identity (trained as a cosine classifier over the
train-split identities, so held-out identities land in a space where same-identity frames are close). Its pooled
features feed the Fréchet distances (FID/FVD proxies) and its identity embedding the drift metric.

Weights ship as bf16 safetensors (``streamavatar/assets/judge/judge.safetensors``, ~1 MB) with a JSON config
holding the target names and their normalisation; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from streamavatar.atomic import atomic_output, atomic_write_text
from streamavatar.errors import UserInputError
from streamavatar.hardware import cpu_has_native_bf16

#: Regressed annotation keys, in output order (radians for angles; mouth values 0..1).
REGRESSION_TARGETS: tuple[str, ...] = (
    "mouth_open", "mouth_width", "head_yaw", "head_pitch", "head_roll",
    "arm_left_shoulder", "arm_left_elbow", "arm_right_shoulder", "arm_right_elbow",
)
#: Head and arm angle targets (the listening-motion metric uses these).
HEAD_TARGETS: tuple[str, ...] = ("head_yaw", "head_pitch", "head_roll")
ARM_TARGETS: tuple[str, ...] = ("arm_left_shoulder", "arm_left_elbow", "arm_right_shoulder", "arm_right_elbow")
N_STATES = 3
DEFAULT_JUDGE_DIR = Path(__file__).resolve().parents[1] / "assets" / "judge"


@dataclass
class JudgeConfig:
    """Architecture and target normalisation of a judge."""

    resolution: int = 128
    widths: tuple[int, ...] = (16, 32, 32, 48, 64, 96, 128)
    strides: tuple[int, ...] = (2, 2, 1, 2, 2, 2, 1)
    feature_dim: int = 256
    embed_dim: int = 64
    n_identities: int = 64
    target_mean: list[float] = field(default_factory=lambda: [0.0] * len(REGRESSION_TARGETS))
    target_std: list[float] = field(default_factory=lambda: [1.0] * len(REGRESSION_TARGETS))

    def to_json(self) -> dict:
        d = asdict(self)
        d["widths"], d["strides"] = list(self.widths), list(self.strides)
        d["targets"] = list(REGRESSION_TARGETS)
        return d

    @classmethod
    def from_json(cls, d: dict) -> JudgeConfig:
        d = {k: v for k, v in d.items() if k != "targets"}
        d["widths"], d["strides"] = tuple(d["widths"]), tuple(d["strides"])
        return cls(**d)


@dataclass
class JudgeOutput:
    """What the judge reads off a batch of frames (numpy, per frame)."""

    params: dict[str, np.ndarray]   # REGRESSION_TARGETS in their own units
    state_prob: np.ndarray          # [N, 3]
    features: np.ndarray            # [N, feature_dim] pooled features (Fréchet distances)
    identity: np.ndarray            # [N, embed_dim] unit-length identity embedding


class Judge(nn.Module):
    """Conv stack (3x3, GroupNorm, SiLU) -> flatten 4x4 -> features -> regression / state / identity heads."""

    def __init__(self, cfg: JudgeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 3
        for w, s in zip(cfg.widths, cfg.strides, strict=True):
            layers += [nn.Conv2d(cin, w, 3, s, 1), nn.GroupNorm(max(1, w // 8), w), nn.SiLU()]
            cin = w
        self.convs = nn.Sequential(*layers)
        side = cfg.resolution
        for s in cfg.strides:
            side = (side + s - 1) // s
        self.side = side
        self.fc = nn.Linear(cin * side * side, cfg.feature_dim)
        self.regress = nn.Linear(cfg.feature_dim, len(REGRESSION_TARGETS))
        self.state = nn.Linear(cfg.feature_dim, N_STATES)
        self.embed = nn.Linear(cfg.feature_dim, cfg.embed_dim)
        self.identity_classes = nn.Parameter(torch.randn(cfg.n_identities, cfg.embed_dim) * 0.1)
        self.register_buffer("target_mean", torch.tensor(cfg.target_mean, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(cfg.target_std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: float ``[N, 3, H, W]`` in 0..1. Returns normalised regression, state logits, features,
        unit identity embedding and identity logits (scaled cosine)."""
        h = self.convs(x * 2.0 - 1.0).flatten(1)
        feat = F.silu(self.fc(h))
        emb = F.normalize(self.embed(feat).float(), dim=-1)
        logits = 16.0 * emb @ F.normalize(self.identity_classes.float(), dim=-1).T
        return {"regress": self.regress(feat).float(), "state": self.state(feat).float(), "features": feat.float(),
                "identity": emb, "identity_logits": logits}


def frames_to_tensor(frames: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, R, R]`` in 0..1 (bilinear resize when the size differs)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserInputError(f"frames must be [N, H, W, 3], got {tuple(frames.shape)}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def run_judge(model: Judge, frames: np.ndarray, batch: int = 64) -> JudgeOutput:
    """Apply the judge to uint8 frames ``[N, H, W, 3]`` (bf16 autocast where the CPU computes bf16 natively,
    batches of ``batch``)."""
    model.eval()
    native = cpu_has_native_bf16()
    outs: dict[str, list[np.ndarray]] = {"regress": [], "state": [], "features": [], "identity": []}
    for i in range(0, len(frames), batch):
        x = frames_to_tensor(frames[i:i + batch], model.cfg.resolution)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native):
            o = model(x)
        outs["regress"].append((o["regress"] * model.target_std + model.target_mean).numpy())
        outs["state"].append(torch.softmax(o["state"], -1).numpy())
        outs["features"].append(o["features"].numpy())
        outs["identity"].append(o["identity"].numpy())
    if not len(frames):
        raise UserInputError("no frames to judge")
    reg = np.concatenate(outs["regress"])
    return JudgeOutput(params={k: reg[:, j] for j, k in enumerate(REGRESSION_TARGETS)},
                       state_prob=np.concatenate(outs["state"]), features=np.concatenate(outs["features"]),
                       identity=np.concatenate(outs["identity"]))


def save_judge(model: Judge, folder: str | Path, report: dict | None = None) -> None:
    """Write ``judge.safetensors`` (bf16) and ``judge.json`` (config + optional accuracy report) to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    with atomic_output(folder / "judge.safetensors") as tmp:
        save_file(state, str(tmp))
    info = {"config": model.cfg.to_json()}
    if report:
        info["report"] = report
    atomic_write_text(folder / "judge.json", json.dumps(info, indent=1))


def load_judge(folder: str | Path | None = None) -> Judge:
    """Load a judge saved by :func:`save_judge` (default: the one shipped in ``streamavatar/assets/judge``)."""
    folder = Path(folder) if folder is not None else DEFAULT_JUDGE_DIR
    if not (folder / "judge.safetensors").is_file() or not (folder / "judge.json").is_file():
        raise UserInputError(f"no judge in {folder} (expected judge.safetensors and judge.json; train one with "
                             f"'streamavatar eval train-judge')")
    cfg = JudgeConfig.from_json(json.loads((folder / "judge.json").read_text())["config"])
    model = Judge(cfg)
    raw = load_file(str(folder / "judge.safetensors"))
    state = {k: v.float() if v.is_floating_point() else v for k, v in raw.items()}
    model.load_state_dict(state)
    model.eval()
    return model

"""AudioProjector: per-latent-frame audio windows → the DiT's audio tokens.

Input: windows ``[B, F, W, L, D]`` from the audio front-end (W video frames per latent frame, L encoder hidden
states of width D, already post-masked). Output: ``[B, F, n_tokens, audio_dim]``, what
:class:`~streamavatar.models.dit.AvatarDiT` takes as ``talk_audio`` / ``listen_audio``.

Layers are combined either by a learned softmax weighting (``layer_mode="weighted"``, as Wan-S2V/LiveAvatar's
audio encoder does) or by concatenation (``"concat"``, as MultiTalk's ``AudioProjModel`` does); the window is then
flattened and mapped by an MLP (Linear → GELU → Linear → GELU → Linear) to ``n_tokens × audio_dim``, followed by
a LayerNorm per token (anchors-models §8, §16). Talk and listen use separate projectors
(:class:`TalkListenProjector`) because the DiT attends to them with separate attention modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from streamavatar.config import DiTConfig
from streamavatar.errors import UserInputError

LayerMode = Literal["weighted", "concat"]


@dataclass(frozen=True)
class AudioProjectorConfig:
    """Shape of an :class:`AudioProjector`: input window ``W × L × D`` → ``n_tokens × audio_dim``."""

    window: int
    num_layers: int
    feature_dim: int
    n_tokens: int
    audio_dim: int
    hidden_dim: int = 512
    layer_mode: LayerMode = "weighted"

    def __post_init__(self) -> None:
        for name in ("window", "num_layers", "feature_dim", "n_tokens", "audio_dim", "hidden_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"AudioProjectorConfig.{name} must be positive, got {getattr(self, name)}")
        if self.layer_mode not in ("weighted", "concat"):
            raise ValueError(f"layer_mode must be 'weighted' or 'concat', got {self.layer_mode!r}")

    @staticmethod
    def for_dit(dit: DiTConfig, window: int, num_layers: int, feature_dim: int, hidden_dim: int = 512,
                layer_mode: LayerMode = "weighted") -> AudioProjectorConfig:
        """The projector that feeds ``dit``'s audio attention (its token count and width)."""
        return AudioProjectorConfig(window, num_layers, feature_dim, dit.audio_tokens_per_frame, dit.audio_dim,
                                    hidden_dim, layer_mode)

    @property
    def in_features(self) -> int:
        per_frame = self.feature_dim if self.layer_mode == "weighted" else self.num_layers * self.feature_dim
        return self.window * per_frame


class AudioProjector(nn.Module):
    """Windows ``[B, F, W, L, D]`` → tokens ``[B, F, n_tokens, audio_dim]`` (see the module docstring)."""

    def __init__(self, cfg: AudioProjectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Softmax over zeros = equal weights at the start.
        self.layer_logits = nn.Parameter(torch.zeros(cfg.num_layers)) if cfg.layer_mode == "weighted" else None
        self.proj = nn.Sequential(
            nn.Linear(cfg.in_features, cfg.hidden_dim), nn.GELU(),
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.GELU(),
            nn.Linear(cfg.hidden_dim, cfg.n_tokens * cfg.audio_dim),
        )
        self.norm = nn.LayerNorm(cfg.audio_dim)

    def layer_weights(self) -> torch.Tensor | None:
        """The current softmax weights over encoder layers (``None`` in concat mode)."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits.float(), dim=0)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        want = (c.window, c.num_layers, c.feature_dim)
        if windows.ndim != 5 or tuple(windows.shape[2:]) != want:
            raise UserInputError(f"audio windows must be [B, F, {c.window}, {c.num_layers}, {c.feature_dim}] "
                                 f"(batch, latent frames, window, layers, dim), got {list(windows.shape)}")
        b, f = windows.shape[:2]
        x = windows.to(self.proj[0].weight.dtype)
        if self.layer_logits is not None:
            x = torch.einsum("bfwld,l->bfwd", x, self.layer_weights().to(x.dtype))
        tokens = self.proj(x.reshape(b, f, -1)).reshape(b, f, c.n_tokens, c.audio_dim)
        return self.norm(tokens)


class TalkListenProjector(nn.Module):
    """Separate projectors for the talk (agent) and listen (user) streams."""

    def __init__(self, cfg: AudioProjectorConfig) -> None:
        super().__init__()
        self.talk = AudioProjector(cfg)
        self.listen = AudioProjector(cfg)

    def forward(self, talk: torch.Tensor | None, listen: torch.Tensor | None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (None if talk is None else self.talk(talk)), (None if listen is None else self.listen(listen))

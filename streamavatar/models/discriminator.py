"""The consistency-aware discriminator D_CA of Stage 2 (paper.md §5) and its plain variant (the ablation).

The backbone is a copy of the teacher DiT (same weights at the start), run bidirectionally over
``[reference (t = 0) | x_σ]`` — real or generated latents noised at a sampled critic level σ — with the
teacher's audio conditioning. Three learnable-query heads read the tokens of three intermediate blocks
(Self-Forcing's GAN discriminator reads blocks 13/21/29 of 30; :func:`default_head_layers` scales that to the
backbone's depth): in each, the learnable queries of a frame cross-attend to that frame's tokens (per-frame
Q-Former queries, paper.md §5), so every latent frame gets one feature per head. The three are concatenated and
projected to one feature per frame. On those features:

* **local realism** head: an MLP per frame → one logit per generated latent frame ``[B, F]``;
* **global consistency** head (D_CA only): the reference frame's feature attends to the features of all later
  frames (cross-attention) → MLP → one logit per clip ``[B]``; this is what penalises drift from the reference.

The plain discriminator (``consistency=False``) has the local head only. Blocks after the last read one and the
backbone's output head are not run (they would get no gradient).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from streamavatar.errors import UserInputError
from streamavatar.models.attention import SelfAttentionPlan
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.rope import rope_angles

#: Blocks Self-Forcing's GAN discriminator reads (0-based, of 30 Wan2.1 blocks; paper.md §5, §9.1).
SELF_FORCING_HEAD_BLOCKS = (13, 21, 29)
SELF_FORCING_NUM_BLOCKS = 30


def default_head_layers(num_layers: int) -> tuple[int, ...]:
    """The three blocks to read in a backbone of ``num_layers`` blocks: Self-Forcing's 13/21/29 of 30 at the
    same relative depth (6 blocks → 2, 3, 5)."""
    if num_layers < 3:
        raise UserInputError(f"the discriminator needs a backbone of at least 3 blocks, got {num_layers}")
    layers = tuple(round((b + 1) * num_layers / SELF_FORCING_NUM_BLOCKS) - 1 for b in SELF_FORCING_HEAD_BLOCKS)
    if len(set(layers)) != len(layers):
        raise UserInputError(f"no three distinct blocks at Self-Forcing's depths in {num_layers} blocks; pass layers")
    return tuple(layers)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Heads of the discriminator (the backbone's configuration is the teacher's)."""

    #: Backbone blocks whose tokens the three query heads read (``None``: :func:`default_head_layers`).
    layers: tuple[int, ...] | None = None
    #: Learnable queries per frame in each head (their outputs are averaged into the frame's feature).
    queries: int = 1
    #: Width of the per-frame feature the heads produce.
    feature_dim: int = 256
    num_heads: int = 4
    #: False: the plain discriminator (local realism head only).
    consistency: bool = True


@dataclass
class DiscriminatorOutput:
    """Logits of one forward: ``local [B, F]`` (one per generated latent frame), ``global_ [B]`` (or None)."""

    local: torch.Tensor
    global_: torch.Tensor | None

    def flat(self) -> torch.Tensor:
        """All logits of each sample side by side, ``[B, F (+1)]`` (for penalties over the whole output)."""
        if self.global_ is None:
            return self.local
        return torch.cat([self.local, self.global_[:, None]], dim=1)


class CrossAttention(nn.Module):
    """Queries ``[N, Q, d]`` attend to keys/values ``[N, K, d_kv]``; pre-LN, residual MLP (a cross-attention-only
    transformer block)."""

    def __init__(self, dim: int, kv_dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise UserInputError(f"feature width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(kv_dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.o = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        h = self.num_heads
        kv = self.norm_kv(kv.float())
        q = self.q(self.norm_q(queries.float())).unflatten(-1, (h, -1)).transpose(1, 2)
        k = self.k(kv).unflatten(-1, (h, -1)).transpose(1, 2)
        v = self.v(kv).unflatten(-1, (h, -1)).transpose(1, 2)
        out = queries.float() + self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(-2))
        return out + self.mlp(out)


def _logit_mlp(dim: int) -> nn.Sequential:
    """LN → Linear → SiLU → Linear → one logit (Self-Forcing's discriminator head)."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1))


class ConsistencyAwareDiscriminator(nn.Module):
    """D_CA (or the plain discriminator): see the module docstring."""

    def __init__(self, backbone: AvatarDiT, cfg: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        layers = cfg.layers if cfg.layers is not None else default_head_layers(backbone.cfg.num_layers)
        if len(layers) != 3 or len(set(layers)) != 3 or not all(0 <= i < backbone.cfg.num_layers for i in layers):
            raise UserInputError(f"the discriminator reads three distinct blocks of 0…{backbone.cfg.num_layers - 1}, "
                                 f"got {layers}")
        if cfg.queries < 1:
            raise UserInputError(f"queries per frame must be >= 1, got {cfg.queries}")
        self.cfg = cfg
        self.layers = tuple(sorted(layers))
        self.backbone = backbone
        d, fd = backbone.cfg.dim, cfg.feature_dim
        self.queries = nn.Parameter(torch.randn(3, cfg.queries, fd) / fd**0.5)
        self.query_heads = nn.ModuleList(CrossAttention(fd, d, cfg.num_heads) for _ in range(3))
        self.merge = nn.Sequential(nn.LayerNorm(3 * fd), nn.Linear(3 * fd, fd))
        self.local_head = _logit_mlp(fd)
        if cfg.consistency:
            self.consistency_attn = CrossAttention(fd, fd, cfg.num_heads)
            self.global_head = _logit_mlp(fd)

    @classmethod
    def from_teacher(cls, teacher: AvatarDiT, cfg: DiscriminatorConfig = DiscriminatorConfig()
                     ) -> ConsistencyAwareDiscriminator:
        """A discriminator whose backbone is a copy of ``teacher`` (the teacher itself is left untouched)."""
        backbone = copy.deepcopy(teacher)
        for p in backbone.parameters():
            p.requires_grad_(True)
        return cls(backbone, cfg)

    def block_tokens(self, x: torch.Tensor, t: torch.Tensor, *, talk_audio: torch.Tensor | None,
                     listen_audio: torch.Tensor | None, reference: torch.Tensor | None,
                     reference_frames: int) -> list[torch.Tensor]:
        """Tokens ``[B, F·S, d]`` after each read block of the bidirectional backbone on ``x``/``t`` (the
        inputs of :meth:`AvatarDiT.forward`)."""
        net = self.backbone
        _, _, f, h, w = x.shape if x.ndim == 5 else (0, 0, 0, 0, 0)
        net._check_inputs(x, t, talk_audio, listen_audio, f - reference_frames)
        gh, gw = net.grid(h, w)
        cos, sin = rope_angles(torch.arange(f, device=x.device), gh, gw, net.cfg.head_dim, net.cfg.rope_theta)
        plan = SelfAttentionPlan(cos, sin, cos, sin, None)
        ctx = net.text_context(None, x.shape[0])
        tokens = net._embed(x, reference, reference_frames)
        _, e0 = net._time(t, talk_audio, listen_audio, reference_frames)
        out = []
        for i, blk in enumerate(net.blocks[:self.layers[-1] + 1]):
            tokens, _, _ = blk(tokens, e0, plan, None, blk.cross_attn.context_kv(ctx), talk_audio, listen_audio,
                               reference_frames)
            if i in self.layers:
                out.append(tokens)
        return out

    def frame_features(self, x: torch.Tensor, t: torch.Tensor, *, talk_audio: torch.Tensor | None = None,
                       listen_audio: torch.Tensor | None = None, reference: torch.Tensor | None = None,
                       reference_frames: int = 1) -> torch.Tensor:
        """One feature per latent frame (reference frames included), ``[B, F, feature_dim]`` float32."""
        b, f = x.shape[0], x.shape[2]
        feats = []
        for k, tokens in enumerate(self.block_tokens(x, t, talk_audio=talk_audio, listen_audio=listen_audio,
                                                     reference=reference, reference_frames=reference_frames)):
            per_frame = tokens.reshape(b * f, -1, tokens.shape[-1])  # a frame's tokens are contiguous
            q = self.queries[k].unsqueeze(0).expand(b * f, -1, -1)
            feats.append(self.query_heads[k](q, per_frame).mean(dim=1).reshape(b, f, -1))
        return self.merge(torch.cat(feats, dim=-1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, talk_audio: torch.Tensor | None = None,
                listen_audio: torch.Tensor | None = None, reference: torch.Tensor | None = None,
                reference_frames: int = 1) -> DiscriminatorOutput:
        """Logits of ``x [B, C, R + F, H, W]`` (``R = reference_frames`` clean reference frames first, then the
        noised frames judged) at per-frame timesteps ``t [B, R + F]``; audio tokens cover the ``F`` frames."""
        if reference_frames < 1:
            raise UserInputError("the discriminator judges frames against the reference: reference_frames >= 1")
        feats = self.frame_features(x, t, talk_audio=talk_audio, listen_audio=listen_audio, reference=reference,
                                    reference_frames=reference_frames)
        gen = feats[:, reference_frames:]
        if gen.shape[1] == 0:
            raise UserInputError("the discriminator needs at least one frame after the reference")
        local = self.local_head(gen).squeeze(-1)
        global_ = None
        if self.cfg.consistency:
            ref = feats[:, :1]
            global_ = self.global_head(self.consistency_attn(ref, gen)).reshape(-1)
        return DiscriminatorOutput(local=local, global_=global_)

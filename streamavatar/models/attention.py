"""Attention layers of the Wan2.x DiT, plus the per-frame talk/listen audio cross-attention.

Parameter names follow Wan (``q``, ``k``, ``v``, ``o``, ``norm_q``, ``norm_k``) so original checkpoints load.
Self-attention runs in three modes over the same weights, chosen by the :class:`SelfAttentionPlan` it is given:
bidirectional (no mask), block-causal (a boolean mask over chunks) and streaming (keys/values of cached frames
from a :class:`~streamavatar.models.kv_cache.StreamingKVCache` are passed in and prepended; RoPE is applied to
the cached, un-rotated keys at attention time with the positions the plan carries). Attention itself is
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on CUDA; a boolean mask selects the
kernels that take one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from streamavatar.models.rope import apply_rope


class WanRMSNorm(nn.Module):
    """RMSNorm over the last axis, computed in float32 (Wan's ``WanRMSNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class WanLayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, returned in the input dtype (Wan's ``WanLayerNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False) -> None:
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


@dataclass
class SelfAttentionPlan:
    """Everything self-attention needs to know about one forward pass (tensors only, so a compiled block sees
    the same kind of input at every layer).

    ``cos_q``/``sin_q`` are the RoPE angles of the query tokens, ``cos_k``/``sin_k`` those of all key tokens
    (cached tokens first, then the current ones). ``mask`` is a boolean mask broadcastable to
    ``[queries, keys]`` (True = attend) or None.
    """

    cos_q: torch.Tensor
    sin_q: torch.Tensor
    cos_k: torch.Tensor
    sin_k: torch.Tensor
    mask: torch.Tensor | None = None


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    return x.unflatten(-1, (num_heads, -1))


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention on ``[B, L, heads, head_dim]`` tensors; returns ``[B, Lq, heads·head_dim]``."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2).flatten(-2)


class WanSelfAttention(nn.Module):
    """Self-attention with RMS-normalised queries/keys (across heads) and 3D RoPE."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, qk_norm: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, plan: SelfAttentionPlan,
                cached: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention output, and this pass's pre-RoPE keys and values (``[B, L, heads, head_dim]``, what a
        streaming cache stores). ``cached`` (pre-RoPE keys, values of cached frames) is prepended to the keys."""
        q = _heads(self.norm_q(self.q(x)), self.num_heads)
        k_new = _heads(self.norm_k(self.k(x)), self.num_heads)
        v_new = _heads(self.v(x), self.num_heads)
        k, v = k_new, v_new
        if cached is not None and cached[0].shape[1]:
            k = torch.cat([cached[0].to(k.dtype), k], dim=1)
            v = torch.cat([cached[1].to(v.dtype), v], dim=1)
        q = apply_rope(q, plan.cos_q, plan.sin_q)
        k = apply_rope(k, plan.cos_k, plan.sin_k)
        return self.o(_sdpa(q, k, v, plan.mask)), k_new, v_new


class WanCrossAttention(nn.Module):
    """Text cross-attention (Wan T2V): queries from video tokens, keys/values from the text context."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, qk_norm: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = WanRMSNorm(dim, eps) if qk_norm else nn.Identity()

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a context ``[B, L, dim]`` (cacheable: the context is fixed for a stream)."""
        return _heads(self.norm_k(self.k(context)), self.num_heads), _heads(self.v(context), self.num_heads)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q = _heads(self.norm_q(self.q(x)), self.num_heads)
        return self.o(_sdpa(q, kv[0], kv[1]))


class FrameAudioAttention(nn.Module):
    """Per-latent-frame audio cross-attention (new in StreamAvatar; one for talk, one for listen audio).

    The video tokens of latent frame ``k`` attend only to the audio tokens of frame ``k``. The output projection
    starts at zero, so adding this module to a pretrained Wan DiT leaves its function unchanged.
    """

    def __init__(self, dim: int, audio_dim: int, num_heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = WanLayerNorm(dim, eps, elementwise_affine=True)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(audio_dim, dim)
        self.v = nn.Linear(audio_dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps)
        self.norm_k = WanRMSNorm(dim, eps)
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.o.bias)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``x [B, F·S, dim]`` video tokens of F frames, ``audio [B, F, n, audio_dim]`` → ``[B, F·S, dim]``."""
        b, f = audio.shape[:2]
        xs = x.reshape(b * f, -1, x.shape[-1])
        a = audio.reshape(b * f, audio.shape[2], audio.shape[3]).to(x.dtype)
        q = _heads(self.norm_q(self.q(self.norm(xs))), self.num_heads)
        k = _heads(self.norm_k(self.k(a)), self.num_heads)
        v = _heads(self.v(a), self.num_heads)
        return self.o(_sdpa(q, k, v)).reshape(x.shape)

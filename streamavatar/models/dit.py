"""AvatarDiT: the Wan2.x video DiT with per-frame timesteps and talk/listen audio attention.

Layout and parameter names are Wan's (``patch_embedding``, ``text_embedding``, ``time_embedding``,
``time_projection``, ``blocks.N.{self_attn, cross_attn, norm3, ffn, modulation}``, ``head.{head, modulation}``;
anchors-models §15.2), so original Wan2.1/Wan2.2 checkpoints load with strict key matching. New parameters live
under ``blocks.N.talk_audio_attn`` and ``blocks.N.listen_audio_attn`` and start as a no-op.

Inputs are latents ``x [B, C, F, H, W]`` with per-frame timesteps ``t [B, F]`` in ``[0, 1000]``. The first
``reference_frames`` frames are reference latents (t = 0, no audio, their own block in the causal mask); audio
tokens cover the other frames. With ``reference_concat`` every frame's input also carries a mask channel block
and the reference latent (Wan-I2V style).

Three attention modes share the weights: :meth:`AvatarDiT.forward` with ``attention="bidirectional"`` (the
teacher) or ``"block_causal"`` (the student on whole clips), and :meth:`AvatarDiT.forward_chunk` (streaming
with a :class:`~streamavatar.models.kv_cache.StreamingKVCache`).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from streamavatar.config import DiTConfig, StreamConfig
from streamavatar.errors import UserInputError
from streamavatar.models.attention import (
    FrameAudioAttention,
    SelfAttentionPlan,
    WanCrossAttention,
    WanLayerNorm,
    WanSelfAttention,
)
from streamavatar.models.kv_cache import StreamingKVCache, make_cache
from streamavatar.models.rope import rope_angles

AttentionMode = Literal["bidirectional", "block_causal"]


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's timestep embedding: ``[cos(t·ω), sin(t·ω)]`` with ``ω_i = 10000^(−i/(dim/2))``, in float32."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    ang = t.to(torch.float64)[..., None] * freqs
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1).float()


def fp32_mlp(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a stack of linears and activations in float32, whatever the weights' dtype or an enclosing autocast.

    Wan computes the time embedding and its projection to the modulation in float32 (``wan/modules/model.py``:
    ``with amp.autocast(dtype=torch.float32)`` around ``time_embedding``/``time_projection``; diffusers keeps
    ``time_embedder`` in ``_keep_in_fp32_modules``): in bf16 the per-frame shift/scale/gate lose the small
    differences between neighbouring timesteps. For float32 weights this is exactly ``seq(x.float())``.
    """
    dev = x.device.type
    off = torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev) else contextlib.nullcontext()
    with off:
        h = x.float()
        for m in seq:
            if isinstance(m, nn.Linear):
                h = F.linear(h, m.weight.float(), None if m.bias is None else m.bias.float())
            else:
                h = m(h)
    return h


def block_causal_mask(num_frames: int, tokens_per_frame: int, chunk_frames: int, reference_frames: int = 1,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean ``[L, L]`` mask (True = attend): reference frames form block 0, then chunks of ``chunk_frames``.

    Attention is bidirectional inside a block and causal across blocks; every block sees the reference.
    """
    gen = num_frames - reference_frames
    if gen < 0 or gen % chunk_frames:
        raise UserInputError(
            f"{num_frames} latent frames do not split into {reference_frames} reference frame(s) plus chunks of "
            f"{chunk_frames}; expected {reference_frames} + k·{chunk_frames} frames")
    block = torch.zeros(num_frames, dtype=torch.long, device=device)
    block[reference_frames:] = 1 + torch.arange(gen, device=device) // chunk_frames
    block = block.repeat_interleave(tokens_per_frame)
    return block[:, None] >= block[None, :]


class WanAttentionBlock(nn.Module):
    """One Wan DiT block plus the talk and listen audio cross-attention."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.norm1 = WanLayerNorm(d, cfg.eps)
        self.self_attn = WanSelfAttention(d, cfg.num_heads, cfg.eps, cfg.qk_norm)
        self.norm3 = WanLayerNorm(d, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = WanCrossAttention(d, cfg.num_heads, cfg.eps, cfg.qk_norm)
        self.talk_audio_attn = FrameAudioAttention(d, cfg.audio_dim, cfg.num_heads, cfg.eps)
        self.listen_audio_attn = FrameAudioAttention(d, cfg.audio_dim, cfg.num_heads, cfg.eps)
        self.norm2 = WanLayerNorm(d, cfg.eps)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, d))
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / d**0.5)

    def forward(self, x: torch.Tensor, e0: torch.Tensor, plan: SelfAttentionPlan,
                cached: tuple[torch.Tensor, torch.Tensor] | None,
                text_kv: tuple[torch.Tensor, torch.Tensor], talk: torch.Tensor | None,
                listen: torch.Tensor | None, audio_from_frame: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, F·S, d]``; ``e0 [B, F, 6, d]`` per-frame modulation; audio ``[B, F − audio_from_frame, n, a]``;
        ``cached`` keys/values of the streaming cache for this layer. Returns the new ``x`` and this pass's
        pre-RoPE self-attention keys and values."""
        b, f = e0.shape[:2]
        e = (self.modulation.float().unsqueeze(0) + e0.float()).unbind(2)  # 6 × [B, F, d]

        def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            hv = h.float().unflatten(1, (f, -1))
            return (hv * (1 + scale[:, :, None]) + shift[:, :, None]).flatten(1, 2).to(x.dtype)

        def gated(y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
            return (y.float().unflatten(1, (f, -1)) * gate[:, :, None]).flatten(1, 2).to(x.dtype)

        y, k, v = self.self_attn(modulate(self.norm1(x), e[0], e[1]), plan, cached)
        x = x + gated(y, e[2])
        x = x + self.cross_attn(self.norm3(x), text_kv)
        if talk is not None or listen is not None:
            s = x.shape[1] // f
            head, tail = x[:, :audio_from_frame * s], x[:, audio_from_frame * s:]
            if talk is not None:
                tail = tail + self.talk_audio_attn(tail, talk)
            if listen is not None:
                tail = tail + self.listen_audio_attn(tail, listen)
            x = torch.cat([head, tail], dim=1) if audio_from_frame else tail
        x = x + gated(self.ffn(modulate(self.norm2(x), e[3], e[4])), e[5])
        return x, k, v


class WanHead(nn.Module):
    """Output head: per-frame modulated LayerNorm and a linear map to patch pixels (Wan's ``Head``)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.norm = WanLayerNorm(cfg.dim, cfg.eps)
        self.head = nn.Linear(cfg.dim, cfg.token_width)
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``x [B, F·S, d]``, ``e [B, F, d]`` (the un-projected time embedding)."""
        f = e.shape[1]
        shift, scale = (self.modulation.float().unsqueeze(0) + e.float()[:, :, None]).unbind(2)
        h = self.norm(x).float().unflatten(1, (f, -1))
        h = (h * (1 + scale[:, :, None]) + shift[:, :, None]).flatten(1, 2).to(x.dtype)
        return self.head(h)


class AvatarDiT(nn.Module):
    """Audio-driven Wan2.x video DiT (see the module docstring)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        if cfg.patch_size[0] != 1:
            raise ValueError(f"per-frame timesteps need a temporal patch of 1, got patch_size {cfg.patch_size}")
        self.cfg = cfg
        d = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(WanAttentionBlock(cfg) for _ in range(cfg.num_layers))
        if cfg.audio_modulation:
            self.talk_audio_modulation = nn.Linear(cfg.audio_dim, d)
            self.listen_audio_modulation = nn.Linear(cfg.audio_dim, d)
        self.head = WanHead(cfg)
        self._init_weights()

    def _init_weights(self) -> None:
        # Wan's init: xavier-uniform linears, normal(0.02) for the embeddings, zero head.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        zero = [m.o for blk in self.blocks for m in (blk.talk_audio_attn, blk.listen_audio_attn)]
        if self.cfg.audio_modulation:
            zero += [self.talk_audio_modulation, self.listen_audio_modulation]
        for lin in zero:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    # --- geometry -----------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token rows and columns of one latent frame of ``height × width``."""
        _, ph, pw = self.cfg.patch_size
        if height % ph or width % pw:
            raise UserInputError(f"latent size {height}x{width} is not divisible by the patch {ph}x{pw}")
        return height // ph, width // pw

    # --- pieces shared by all modes -----------------------------------------------------------------------
    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, talk: torch.Tensor | None,
                      listen: torch.Tensor | None, audio_frames: int) -> None:
        c = self.cfg
        if x.ndim != 5 or x.shape[1] != c.latent_channels:
            raise UserInputError(
                f"latents must be [B, {c.latent_channels}, F, H, W], got {tuple(x.shape)}")
        b, _, f = x.shape[:3]
        if tuple(t.shape) != (b, f):
            raise UserInputError(f"timesteps must be [B, F] = [{b}, {f}], got {tuple(t.shape)}")
        for name, a in (("talk", talk), ("listen", listen)):
            if a is None:
                continue
            want = (b, audio_frames, c.audio_tokens_per_frame, c.audio_dim)
            if tuple(a.shape) != want:
                raise UserInputError(
                    f"{name} audio tokens must be [B, frames, tokens, dim] = {list(want)} (one entry per "
                    f"non-reference latent frame), got {list(a.shape)}")

    def _embed(self, x: torch.Tensor, reference: torch.Tensor | None, reference_frames: int) -> torch.Tensor:
        """Patchify ``x [B, C, F, H, W]`` (plus mask and reference channels) into tokens ``[B, F·h·w, d]``."""
        c = self.cfg
        if c.reference_concat:
            b, _, f, h, w = x.shape
            if reference is None:
                if reference_frames == 0:
                    raise UserInputError("this model concatenates the reference on its input: pass `reference`")
                reference = x[:, :, :1]
            if tuple(reference.shape) != (b, c.latent_channels, 1, h, w):
                raise UserInputError(
                    f"reference latent must be [{b}, {c.latent_channels}, 1, {h}, {w}], got {tuple(reference.shape)}")
            mask = torch.zeros(b, c.mask_channels, f, h, w, dtype=x.dtype, device=x.device)
            mask[:, :, :reference_frames] = 1
            x = torch.cat([x, mask, reference.to(x.dtype).expand(-1, -1, f, -1, -1)], dim=1)
        _, ph, pw = c.patch_size
        b, ch, f, h, w = x.shape
        patches = x.reshape(b, ch, f, h // ph, ph, w // pw, pw).permute(0, 2, 3, 5, 1, 4, 6)
        patches = patches.reshape(b, f * (h // ph) * (w // pw), ch * ph * pw).to(self.dtype)
        weight = self.patch_embedding.weight.flatten(1)
        return torch.nn.functional.linear(patches, weight, self.patch_embedding.bias)

    def _time(self, t: torch.Tensor, talk: torch.Tensor | None = None, listen: torch.Tensor | None = None,
              audio_from_frame: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame time embedding ``e [B, F, d]`` and modulation ``e0 [B, F, 6, d]``, computed in float32
        whatever the weights' dtype or autocast (:func:`fp32_mlp`).

        With ``audio_modulation`` the mean audio token of each frame is projected and added to that frame's
        time embedding, so audio also steers every block's shift/scale/gate (not only cross-attention)."""
        e = fp32_mlp(self.time_embedding, sinusoidal_embedding(t, self.cfg.freq_dim))
        if self.cfg.audio_modulation:
            extra = torch.zeros_like(e)
            for proj, a in ((self.talk_audio_modulation, talk), (self.listen_audio_modulation, listen)):
                if a is not None:
                    extra[:, audio_from_frame:] += proj(a.to(self.dtype).mean(dim=2)).float()
            e = e + extra
        e0 = fp32_mlp(self.time_projection, e).unflatten(-1, (6, self.cfg.dim))
        return e, e0

    def text_context(self, context: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Embedded text context ``[B, L, d]``; ``None`` means the fixed all-zero prompt embedding."""
        if context is None:
            context = torch.zeros(batch, 1, self.cfg.text_dim, device=self.patch_embedding.weight.device)
        if context.ndim != 3 or context.shape[-1] != self.cfg.text_dim:
            raise UserInputError(f"text context must be [B, L, {self.cfg.text_dim}], got {tuple(context.shape)}")
        return self.text_embedding(context.to(self.dtype))

    def _unpatchify(self, tokens: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        c = self.cfg
        _, ph, pw = c.patch_size
        gh, gw = h // ph, w // pw
        out = tokens.float().reshape(tokens.shape[0], f, gh, gw, ph, pw, c.out_channels)
        return out.permute(0, 6, 1, 2, 4, 3, 5).reshape(tokens.shape[0], c.out_channels, f, h, w)

    def _run_blocks(self, tokens: torch.Tensor, t: torch.Tensor, plan: SelfAttentionPlan,
                    text_kv: list[tuple[torch.Tensor, torch.Tensor]], talk: torch.Tensor | None,
                    listen: torch.Tensor | None, audio_from_frame: int,
                    cache: StreamingKVCache | None = None, stage: bool = False) -> torch.Tensor:
        """The blocks and the head; with ``cache`` every layer attends to its cached keys/values, and with
        ``stage`` this pass's keys/values are staged in the cache for a later commit."""
        e, e0 = self._time(t, talk, listen, audio_from_frame)
        for i, blk in enumerate(self.blocks):
            cached = cache.layer(i) if cache is not None else None
            tokens, k, v = blk(tokens, e0, plan, cached, text_kv[i], talk, listen, audio_from_frame)
            if stage:
                cache.stage(i, k, v)
        return self.head(tokens, e)

    # --- full-sequence forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, *, talk_audio: torch.Tensor | None = None,
                listen_audio: torch.Tensor | None = None, context: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, reference_frames: int = 1,
                attention: AttentionMode = "bidirectional", chunk_frames: int = 3,
                frame_positions: torch.Tensor | None = None,
                frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Denoiser output for a whole clip, ``[B, C, F, H, W]`` in float32.

        ``frame_positions`` (``[F]`` integers) overrides the temporal RoPE index of each frame (default
        ``0…F−1``); the block-causal mode uses chunks of ``chunk_frames`` after the reference frames.
        ``frame_mask`` (boolean ``[F, F]``, True = frame i attends to frame j) replaces the mode's mask, for
        sequences that hold one frame twice (e.g. a chunk as noisy context and as the chunk being denoised).
        """
        b, _, f, h, w = x.shape if x.ndim == 5 else (0, 0, 0, 0, 0)
        self._check_inputs(x, t, talk_audio, listen_audio, f - reference_frames)
        gh, gw = self.grid(h, w)
        s = gh * gw
        if frame_positions is None:
            frame_positions = torch.arange(f, device=x.device)
        if frame_positions.shape != (f,):
            raise UserInputError(
                f"frame_positions must have one entry per frame ({f}), got {tuple(frame_positions.shape)}")
        cos, sin = rope_angles(frame_positions, gh, gw, self.cfg.head_dim, self.cfg.rope_theta, device=x.device)
        if attention == "bidirectional":
            mask = None
        elif attention == "block_causal":
            mask = block_causal_mask(f, s, chunk_frames, reference_frames, x.device)
        else:
            raise UserInputError(f"attention must be 'bidirectional' or 'block_causal', got {attention!r}")
        if frame_mask is not None:
            if frame_mask.shape != (f, f) or frame_mask.dtype != torch.bool:
                raise UserInputError(f"frame_mask must be a boolean [{f}, {f}] tensor, got {tuple(frame_mask.shape)}")
            mask = frame_mask.to(x.device).repeat_interleave(s, 0).repeat_interleave(s, 1)
        plan = SelfAttentionPlan(cos, sin, cos, sin, mask)
        ctx = self.text_context(context, b)
        text_kv = [blk.cross_attn.context_kv(ctx) for blk in self.blocks]
        tokens = self._embed(x, reference, reference_frames)
        out = self._run_blocks(tokens, t, plan, text_kv, talk_audio, listen_audio, reference_frames)
        return self._unpatchify(out, f, h, w)

    # --- streaming ----------------------------------------------------------------------------------------
    def new_cache(self, stream: StreamConfig, batch: int, height: int, width: int,
                  device: torch.device | str = "cpu") -> StreamingKVCache:
        """An empty cache for streams of ``batch`` × latent frames of ``height × width``."""
        gh, gw = self.grid(height, width)
        return make_cache(stream, num_layers=self.cfg.num_layers, batch=batch, tokens_per_frame=gh * gw,
                                num_heads=self.cfg.num_heads, head_dim=self.cfg.head_dim, dtype=self.dtype,
                                device=device)

    def forward_chunk(self, x: torch.Tensor, t: torch.Tensor, cache: StreamingKVCache, frames: list[int], *,
                      commit: bool, talk_audio: torch.Tensor | None = None,
                      listen_audio: torch.Tensor | None = None, context: torch.Tensor | None = None,
                      reference: torch.Tensor | None = None, reference_frames: int = 0) -> torch.Tensor:
        """Denoise latent frames ``frames`` (true indices) attending to the cache; ``[B, C, F, H, W]`` float32.

        The attended sequence is ``[cached frames][these frames]`` with temporal RoPE indices from
        :func:`~streamavatar.models.rope.temporal_positions` (RAPR when ``cache.stream.rapr``). With ``commit``
        the keys/values of this pass are written into the cache afterwards (sink first, then the FIFO window).
        To prefill the reference, call with its latent, ``t = 0``, ``frames=[0]`` and ``reference_frames=1``.
        """
        b, _, f, h, w = x.shape if x.ndim == 5 else (0, 0, 0, 0, 0)
        self._check_inputs(x, t, talk_audio, listen_audio, f - reference_frames)
        if len(frames) != f:
            raise UserInputError(f"{f} latent frames given but {len(frames)} frame indices")
        gh, gw = self.grid(h, w)
        if gh * gw != cache.tokens_per_frame or cache.keys[0].shape[0] != b:
            raise UserInputError(
                f"this cache holds batch {cache.keys[0].shape[0]} × {cache.tokens_per_frame} tokens per frame; "
                f"got batch {b} × {gh * gw}")
        cos_k, sin_k = cache.rope_angles(list(frames), gh, gw, self.cfg.head_dim, self.cfg.rope_theta)
        n_cur = f * gh * gw
        plan = SelfAttentionPlan(cos_k[-n_cur:], sin_k[-n_cur:], cos_k, sin_k, cache.key_mask(n_cur))
        if cache.text_kv[0] is None or context is not None:
            ctx = self.text_context(context, b)
            cache.text_kv = [blk.cross_attn.context_kv(ctx) for blk in self.blocks]
        tokens = self._embed(x, reference, reference_frames)
        out = self._run_blocks(tokens, t, plan, cache.text_kv, talk_audio, listen_audio, reference_frames,
                               cache=cache, stage=commit)
        if commit:
            cache.commit(list(frames))
        return self._unpatchify(out, f, h, w)

    def compile_blocks(self, backend: str = "inductor", mode: str | None = None) -> AvatarDiT:
        """``torch.compile`` every transformer block and the head in place (regional compilation).

        A block's inputs are tensors only (the cache's keys/values are passed in, staging happens outside), so
        dynamo traces one graph that every layer reuses — compile time is that of one block, not of the whole
        stack. With a :class:`~streamavatar.models.kv_cache.RingKVCache` the streaming chunk step has the same
        shapes every chunk, so nothing recompiles as the stream runs (a shifting cache recompiles while its
        window fills). ``backend``: ``"inductor"`` (CPU and CUDA), ``"aot_eager"`` (no code generation) or any
        torch backend; ``mode``: e.g. ``"max-autotune"`` or ``"reduce-overhead"`` (CUDA graphs)."""
        for module in [*self.blocks, self.head]:
            module.compile(backend=backend, mode=mode, dynamic=False)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


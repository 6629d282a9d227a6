"""Analytic FLOP count of the streaming DiT per chunk, and achieved throughput against the chip's peak.

Counted: every matrix product of a forward pass (2 FLOPs per multiply-add) — the linear layers (patch embedding,
time embedding and projection, self/text/audio attention projections, FFN, head, audio modulation) and the
attention products ``QKᵀ`` and ``AV`` of self-attention (over the cached and the current tokens), text
cross-attention and the per-frame audio attention. Not counted: norms, RoPE, activations and other elementwise
work (a few % of the total at Wan sizes), and the per-stream work a chunk does not repeat (the text context's
keys/values and the sink prefill). This is what ``torch.utils.flop_counter.FlopCounterMode`` counts, which the
tests compare against.

Peak numbers are dense bf16 tensor-core throughput from the vendors' data sheets (NVIDIA H100/H200/H800 SXM:
989.4 TFLOP/s, H100 PCIe 756, A100: 312); an unknown device (or a CPU) has no peak (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

from streamavatar.config import DiTConfig, StreamConfig

#: Dense bf16 peak TFLOP/s by a substring of ``torch.cuda.get_device_name()`` (first match wins).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
)


def peak_bf16_tflops(device_name: str | None) -> float | None:
    """Data-sheet dense bf16 peak of a device by name (``torch.cuda.get_device_name``), None if unknown."""
    if not device_name:
        return None
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


@dataclass(frozen=True)
class ChunkFlops:
    """FLOPs of one chunk: ``per_forward`` (one denoising pass) by part, and the chunk total over its passes."""

    linear: int
    attention: int
    forwards: int
    tokens: int
    attended_tokens: int

    @property
    def per_forward(self) -> int:
        return self.linear + self.attention

    @property
    def per_chunk(self) -> int:
        return self.per_forward * self.forwards

    def to_dict(self) -> dict:
        return {"per_chunk": self.per_chunk, "per_forward": self.per_forward, "linear_per_forward": self.linear,
                "attention_per_forward": self.attention, "forwards_per_chunk": self.forwards,
                "query_tokens": self.tokens, "attended_tokens": self.attended_tokens}


def dit_chunk_flops(cfg: DiTConfig, stream: StreamConfig, tokens_per_frame: int, *, cached_frames: int | None = None,
                    text_tokens: int = 1, audio: bool = True, ring_cache: bool | None = None) -> ChunkFlops:
    """FLOPs of one streaming chunk of the DiT (see the module docstring).

    ``tokens_per_frame``: DiT tokens of one latent frame (``(h/2)·(w/2)``). ``cached_frames``: frames in the
    cache the chunk attends to (default: a full cache, the steady state; a ring cache always attends to its whole
    buffer, masked slots included, so ``ring_cache`` forces the full size). ``text_tokens``: length of the text
    context (1 for the fixed zero prompt). ``audio``: talk and listen tokens are given.
    """
    ring = stream.ring_cache if ring_cache is None else ring_cache
    full = stream.cached_frames
    cached = full if cached_frames is None or ring else min(cached_frames, full)
    d, f = cfg.dim, stream.chunk_frames
    n = f * tokens_per_frame
    keys = cached * tokens_per_frame + n
    _, ph, pw = cfg.patch_size
    mm = 0
    mm += n * cfg.in_channels * ph * pw * d                       # patch embedding
    mm += f * (cfg.freq_dim * d + d * d + d * 6 * d)              # time embedding + projection (per frame)
    per_layer = 4 * n * d * d                                     # self-attention q, k, v, o
    per_layer += 2 * n * d * d                                    # text cross-attention q, o (k, v cached)
    per_layer += 2 * n * d * cfg.ffn_dim                          # FFN
    att = 2 * n * keys * d                                        # self-attention QKᵀ and AV
    att += 2 * n * text_tokens * d                                # text cross-attention
    if audio:
        a_tok = f * cfg.audio_tokens_per_frame
        per_layer += 2 * (2 * n * d * d + 2 * a_tok * cfg.audio_dim * d)  # talk + listen: q, o; k, v
        att += 2 * 2 * n * cfg.audio_tokens_per_frame * d                 # talk + listen, per frame
        if cfg.audio_modulation:
            mm += 2 * f * cfg.audio_dim * d
    mm += cfg.num_layers * per_layer
    mm += n * d * cfg.token_width                                  # head
    forwards = stream.num_steps + (1 if stream.cache_refresh == "clean_pass" else 0)
    return ChunkFlops(linear=2 * mm, attention=2 * cfg.num_layers * att, forwards=forwards, tokens=n,
                      attended_tokens=keys)


def throughput(flops: int, seconds: float, device_name: str | None) -> dict:
    """Achieved TFLOP/s of ``flops`` done in ``seconds`` and the fraction of the device's bf16 peak."""
    tflops = flops / seconds / 1e12 if seconds > 0 else None
    peak = peak_bf16_tflops(device_name)
    return {"tflops": None if tflops is None else round(tflops, 4), "peak_bf16_tflops": peak,
            "fraction_of_peak": None if peak is None or tflops is None else round(tflops / peak, 4),
            "device_name": device_name}

"""Per-layer key/value cache for streaming: the Reference Sink and the rolling window (ARCHITECTURE.md §3).

The cache stores keys *before* RoPE (RAPR re-encodes positions at attention time) and values, for whole latent
frames. Layout per layer: one preallocated buffer ``[B, capacity_frames · tokens_per_frame, heads, head_dim]``
whose first ``sink_capacity`` frames are the sink (filled once, never evicted) and the rest the rolling window
(FIFO). Frames fill the sink first, so the valid entries are always one contiguous prefix of the buffer, in
temporal order. Nothing grows with stream length: every tensor here keeps its shape for the whole stream.

Without a Reference Sink (``reference_sink=False``, the ablation baseline) the sink's room is given to the
window, so the cache budget is the same and the reference is evicted like any other frame.
"""

from __future__ import annotations

import torch

from streamavatar.config import StreamConfig
from streamavatar.models.rope import rope_angles


class StreamingKVCache:
    """Keys (pre-RoPE) and values of the cached latent frames for every transformer layer."""

    def __init__(self, stream: StreamConfig, *, num_layers: int, batch: int, tokens_per_frame: int,
                 num_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        self.stream = stream
        self.tokens_per_frame = tokens_per_frame
        self.sink_capacity = stream.sink_frames if stream.reference_sink else 0
        self.window_capacity = stream.cached_frames - self.sink_capacity
        capacity = (self.sink_capacity + self.window_capacity) * tokens_per_frame
        shape = (batch, capacity, num_heads, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.sink_frames: list[int] = []
        self.window_frames: list[int] = []
        self._staged: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        #: Cross-attention keys/values of the fixed text context, per layer (computed once per stream).
        self.text_kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers
        self._rope: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None

    def rope_angles(self, positions: list[int], height: int, width: int, head_dim: int,
                    theta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos/sin of the attended tokens for temporal ``positions`` (see
        :func:`~streamavatar.models.rope.rope_angles`), computed once per cache layout: the denoising steps of a
        chunk — and, once RAPR has frozen the layout, every later chunk — reuse them. One layout is kept, so
        nothing grows with the stream (with RAPR off the positions change every chunk)."""
        key = (tuple(positions), height, width, head_dim, theta)
        if self._rope is None or self._rope[0] != key:
            self._rope = (key, rope_angles(torch.tensor(positions), height, width, head_dim, theta))
        return self._rope[1]

    # --- reading ------------------------------------------------------------------------------------------
    @property
    def frames(self) -> list[int]:
        """True indices of the cached frames in attention order (sink, then window)."""
        return self.sink_frames + self.window_frames

    @property
    def num_valid_tokens(self) -> int:
        return len(self.frames) * self.tokens_per_frame

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached (pre-RoPE keys, values) of one layer, ``[B, valid_tokens, heads, head_dim]`` (views)."""
        n = self.num_valid_tokens
        return self.keys[index][:, :n], self.values[index][:, :n]

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the cache holds (for size checks)."""
        out = self.keys + self.values
        out += [t for kv in self.text_kv if kv is not None for t in kv]
        return out

    # --- writing ------------------------------------------------------------------------------------------
    def stage(self, index: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Hold one layer's pre-RoPE keys and values of the frames being generated until :meth:`commit`."""
        self._staged[index] = (k.detach(), v.detach())

    def commit(self, frames: list[int]) -> None:
        """Write the staged keys/values of ``frames`` (true indices, increasing) into sink and window.

        Frames go to the sink while it has room, then into the window; when the window is full its oldest
        frame is evicted (FIFO).
        """
        if len(self._staged) != len(self.keys):
            raise RuntimeError(f"commit needs keys of all {len(self.keys)} layers, {len(self._staged)} staged")
        known = self.frames
        if known and frames and frames[0] <= known[-1]:
            raise ValueError(f"frames {frames} do not follow the cached frames {known}")
        s = self.tokens_per_frame
        for j, frame in enumerate(frames):
            if len(self.sink_frames) < self.sink_capacity:
                slot = len(self.sink_frames)
                self.sink_frames.append(frame)
            elif self.window_capacity == 0:
                continue
            elif len(self.window_frames) < self.window_capacity:
                slot = self.sink_capacity + len(self.window_frames)
                self.window_frames.append(frame)
            else:
                start, end = self.sink_capacity * s, (self.sink_capacity + self.window_capacity) * s
                for buf in self.keys + self.values:
                    buf[:, start:end - s] = buf[:, start + s:end].clone()
                self.window_frames = self.window_frames[1:] + [frame]
                slot = self.sink_capacity + self.window_capacity - 1
            for i, (k, v) in self._staged.items():
                self.keys[i][:, slot * s:(slot + 1) * s] = k[:, j * s:(j + 1) * s]
                self.values[i][:, slot * s:(slot + 1) * s] = v[:, j * s:(j + 1) * s]
        self._staged.clear()

    def discard_staged(self) -> None:
        """Forget staged keys/values (a denoising pass whose keys are not kept)."""
        self._staged.clear()

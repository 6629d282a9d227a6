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
from streamavatar.models.rope import rope_angles, temporal_positions


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

    def key_positions(self, frames: list[int]) -> list[int]:
        """Temporal RoPE index of every attended frame: the cached frames in the order :meth:`layer` returns
        them, then ``frames`` (the chunk being generated), by :func:`~streamavatar.models.rope.temporal_positions`
        (RAPR when ``stream.rapr``)."""
        return temporal_positions(self.frames + list(frames), self.stream.rapr)

    def rope_angles(self, frames: list[int], height: int, width: int, head_dim: int,
                    theta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos/sin of the attended tokens when generating ``frames`` (see :meth:`key_positions` and
        :func:`~streamavatar.models.rope.rope_angles`), on the cache's device, computed once per cache layout:
        the denoising steps of a chunk — and, once RAPR has frozen the layout, every later chunk — reuse them.
        One layout is kept, so nothing grows with the stream (with RAPR off the positions change every chunk)."""
        positions = self.key_positions(frames)
        key = (tuple(positions), height, width, head_dim, theta)
        if self._rope is None or self._rope[0] != key:
            pos = torch.tensor(positions, device=self.keys[0].device)
            self._rope = (key, rope_angles(pos, height, width, head_dim, theta))
        return self._rope[1]

    def key_mask(self, current_tokens: int) -> torch.Tensor | None:
        """Boolean key mask for attention over ``[cached | current]`` keys, or None (every key is valid)."""
        return None

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

    def _check_commit(self, frames: list[int]) -> None:
        """Every layer staged, and ``frames`` after the cached ones."""
        if len(self._staged) != len(self.keys):
            raise RuntimeError(f"commit needs keys of all {len(self.keys)} layers, {len(self._staged)} staged")
        known = self.frames
        if known and frames and frames[0] <= known[-1]:
            raise ValueError(f"frames {frames} do not follow the cached frames {known}")

    def _write_slot(self, slot: int, j: int) -> None:
        """Copy staged frame ``j`` of every layer into cache slot ``slot``."""
        s = self.tokens_per_frame
        for i, (k, v) in self._staged.items():
            self.keys[i][:, slot * s:(slot + 1) * s] = k[:, j * s:(j + 1) * s]
            self.values[i][:, slot * s:(slot + 1) * s] = v[:, j * s:(j + 1) * s]

    def commit(self, frames: list[int]) -> None:
        """Write the staged keys/values of ``frames`` (true indices, increasing) into sink and window.

        Frames go to the sink while it has room, then into the window; when the window is full its oldest
        frame is evicted (FIFO).
        """
        self._check_commit(frames)
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
            self._write_slot(slot, j)
        self._staged.clear()

    def discard_staged(self) -> None:
        """Forget staged keys/values (a denoising pass whose keys are not kept)."""
        self._staged.clear()


class RingKVCache(StreamingKVCache):
    """The same cache with static shapes: the rolling window is a ring indexed modulo its length.

    :meth:`layer` always returns the whole buffer (sink slots, then window slots in ring order), so every chunk
    step attends to keys of the same shape; slots not yet written are masked out (:meth:`key_mask`). Eviction
    overwrites the oldest slot in place instead of shifting the window. RoPE positions are assigned per slot
    from the frame each slot holds, with RAPR's temporal order, so attention sees exactly the keys, values and
    positions of :class:`StreamingKVCache` in another order (outputs equal to summation order).
    """

    def __init__(self, stream: StreamConfig, **kwargs) -> None:
        super().__init__(stream, **kwargs)
        n_slots = self.sink_capacity + self.window_capacity
        #: True index of the frame each slot holds (None: never written).
        self.slot_frames: list[int | None] = [None] * n_slots
        self._window_written = 0
        s = self.tokens_per_frame
        self._valid = torch.zeros(n_slots * s, dtype=torch.bool, device=self.keys[0].device)
        self._mask: tuple[int, torch.Tensor] | None = None

    def key_positions(self, frames: list[int]) -> list[int]:
        order = self.frames + list(frames)
        position = dict(zip(order, temporal_positions(order, self.stream.rapr), strict=True))
        return [0 if f is None else position[f] for f in self.slot_frames] + [position[f] for f in frames]

    def key_mask(self, current_tokens: int) -> torch.Tensor:
        """``[1, 1, 1, slots·tokens + current_tokens]``: True for written slots and for the current tokens.

        The same tensor is updated in place as slots fill, so its shape and storage never change."""
        if self._mask is None or self._mask[0] != current_tokens:
            mask = torch.ones(self._valid.numel() + current_tokens, dtype=torch.bool, device=self._valid.device)
            self._mask = (current_tokens, mask)
        self._mask[1][: self._valid.numel()] = self._valid
        return self._mask[1].view(1, 1, 1, -1)

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole (pre-RoPE keys, values) buffer of one layer, in slot order; see :meth:`key_mask`."""
        return self.keys[index], self.values[index]

    def commit(self, frames: list[int]) -> None:
        self._check_commit(frames)
        s = self.tokens_per_frame
        for j, frame in enumerate(frames):
            if len(self.sink_frames) < self.sink_capacity:
                slot = len(self.sink_frames)
                self.sink_frames.append(frame)
            elif self.window_capacity == 0:
                continue
            else:
                slot = self.sink_capacity + self._window_written % self.window_capacity
                self._window_written += 1
                self.window_frames = (self.window_frames + [frame])[-self.window_capacity:]
            self.slot_frames[slot] = frame
            self._valid[slot * s:(slot + 1) * s] = True
            self._write_slot(slot, j)
        self._staged.clear()


def make_cache(stream: StreamConfig, **kwargs) -> StreamingKVCache:
    """The cache ``stream`` asks for: :class:`RingKVCache` with ``stream.ring_cache``, else
    :class:`StreamingKVCache` (same arguments)."""
    return RingKVCache(stream, **kwargs) if stream.ring_cache else StreamingKVCache(stream, **kwargs)

"""RoPE against Wan/diffusers, and RAPR temporal indices against ARCHITECTURE.md §3."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamavatar.config import StreamConfig
from streamavatar.models.kv_cache import StreamingKVCache
from streamavatar.models.rope import apply_rope, rope_angles, rope_axis_pairs, temporal_positions


def attended_layout(stream: StreamConfig, chunk: int) -> list[int]:
    """The attended true frame indices for generating chunk ``chunk`` (1-based), by running a real cache."""
    cache = StreamingKVCache(stream, num_layers=1, batch=1, tokens_per_frame=1, num_heads=1, head_dim=2,
                             dtype=torch.float32)
    c = stream.chunk_frames
    commits = [[0]] + [list(range(1 + i * c, 1 + (i + 1) * c)) for i in range(chunk - 1)]
    for frames in commits:
        cache.stage(0, torch.zeros(1, len(frames), 1, 2), torch.zeros(1, len(frames), 1, 2))
        cache.commit(frames)
    current = list(range(1 + (chunk - 1) * c, 1 + chunk * c))
    return cache.frames + current


def expected_layout(sink: int, window: int, c: int, chunk: int, reference_sink: bool = True) -> list[int]:
    """§3 written out: sink = the first `sink` frames; window = the `window` frames before the chunk."""
    s, e = (chunk - 1) * c + 1, chunk * c
    history = list(range(0, s))
    if not reference_sink:
        return history[max(0, len(history) - (sink + window)):] + list(range(s, e + 1))
    sink_part = history[:sink]
    rest = history[sink:]
    window_part = rest[max(0, len(rest) - window):] if window else []
    return sink_part + window_part + list(range(s, e + 1))


def test_worked_example_of_architecture_section_3():
    stream = StreamConfig()  # C = 3, sink 4, window 3
    table = {
        1: ([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]),
        2: ([0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]),
        3: ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], list(range(10)), list(range(10))),
        4: ([0, 1, 2, 3, 7, 8, 9, 10, 11, 12], list(range(10)), [0, 1, 2, 3, 7, 8, 9, 10, 11, 12]),
        5: ([0, 1, 2, 3, 10, 11, 12, 13, 14, 15], list(range(10)), [0, 1, 2, 3, 10, 11, 12, 13, 14, 15]),
    }
    for chunk, (frames, rapr, absolute) in table.items():
        got = attended_layout(stream, chunk)
        assert got == frames
        assert temporal_positions(got, rapr=True) == rapr
        assert temporal_positions(got, rapr=False) == absolute
    assert stream.rapr_max_distance == 9


@settings(max_examples=60, deadline=None)
@given(chunks=st.integers(1, 50), sink=st.integers(1, 8), window=st.integers(0, 8), c=st.integers(1, 5),
       reference_sink=st.booleans())
def test_rapr_indices_match_definition(chunks, sink, window, c, reference_sink):
    stream = StreamConfig(chunk_frames=c, sink_frames=sink, window_frames=window, reference_sink=reference_sink)
    d = stream.rapr_max_distance
    for chunk in range(1, chunks + 1):
        frames = attended_layout(stream, chunk)
        assert frames == expected_layout(sink, window, c, chunk, reference_sink)
        rapr = temporal_positions(frames, rapr=True)
        assert rapr == list(range(len(frames)))
        assert temporal_positions(frames, rapr=False) == frames
        # The distance from the first attended frame to the current chunk never exceeds D …
        assert rapr[-1] <= d
        # … equals the true index while nothing has been evicted …
        if chunk * c <= d:
            assert rapr == frames
        # … and the layout is frozen once the cache is full.
        if (chunk - 1) * c >= stream.cached_frames and window + (0 if reference_sink else sink) >= c:
            assert rapr[-1] == d
        if reference_sink:
            assert frames[:min(sink, (chunk - 1) * c + 1)] == list(range(min(sink, (chunk - 1) * c + 1)))


def test_positions_must_increase():
    with pytest.raises(ValueError):
        temporal_positions([0, 3, 2], rapr=True)


def test_rope_matches_diffusers_wan():
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    head_dim, f, h, w = 64, 5, 3, 4
    rope = WanRotaryPosEmbed(head_dim, (1, 2, 2), 1024)
    cos_ref, sin_ref = rope(torch.zeros(1, 1, f, 2 * h, 2 * w))
    cos, sin = rope_angles(torch.arange(f), h, w, head_dim)
    # diffusers repeats each pair's angle twice along the head axis.
    assert torch.allclose(cos_ref[0, :, 0, 0::2].float(), cos, atol=1e-6)
    assert torch.allclose(sin_ref[0, :, 0, 1::2].float(), sin, atol=1e-6)
    assert rope_axis_pairs(128) == (22, 21, 21)  # Wan: [44, 42, 42] real dims for head_dim 128


def test_rope_is_relative_in_time():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 1, 64), torch.randn(1, 2, 1, 64)

    def score(pq: int, pk: int) -> float:
        cq, sq = rope_angles(torch.tensor([pq]), 1, 1, 64)
        ck, sk = rope_angles(torch.tensor([pk]), 1, 1, 64)
        return float((apply_rope(q[:, :1], cq, sq) * apply_rope(k[:, :1], ck, sk)).sum())

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(8, 3), abs=1e-4)

"""The voice queue: positions, reads bounded by ``until``, skips that keep the look-ahead, thread safety; and
that a chunk bounded by ``talk_until`` sees exactly what it would if nothing past the bound had been pushed."""

from __future__ import annotations

import threading

import numpy as np
import torch

from streamavatar.audio import AudioConfig, AudioFrontend
from streamavatar.audio.queue import AudioQueue
from streamavatar.audio.streaming import ChunkAudioEncoder


def test_positions_and_reads_bounded_by_until():
    q = AudioQueue()
    q.push(np.arange(0, 3000, dtype=np.float32))
    q.push(np.arange(3000, 5000, dtype=np.float32))
    assert (q.start, q.end, len(q)) == (0, 5000, 5000)
    assert q.take(2000, until=1500).tolist() == list(range(1500))  # the bound wins over n
    assert q.peek(1000, until=1500).size == 0 and q.take(10, until=1000).size == 0  # nothing before the bound
    assert q.peek(2000, until=4000).tolist() == list(range(1500, 3500))  # across the two pushed parts
    assert q.take(10).tolist() == list(range(1500, 1510)) and q.start == 1510
    q.clear()
    assert (q.start, q.end, len(q)) == (5000, 5000, 0)  # a read planned before the clear reads nothing
    q.push(np.arange(7, dtype=np.float32))
    assert q.take(100, until=5000).size == 0 and q.end == 5007


def test_skip_keeps_what_was_looked_at_and_stops_at_until():
    q = AudioQueue()
    q.push(np.arange(100, dtype=np.float32))
    assert q.skip(30, keep=10, until=50) == 30  # drops 10..39
    assert q.end == 70 and q.peek(100).tolist() == list(range(10)) + list(range(40, 100))
    assert q.skip(100, keep=10, until=40) == 30  # up to the bound: queue positions 10..39
    assert q.peek(100).tolist() == list(range(10)) + list(range(70, 100))
    assert q.skip(5, keep=200) == 0


def test_cap_drops_the_oldest_and_counts_them():
    q = AudioQueue(max_samples=10)
    q.push(np.arange(6, dtype=np.float32))
    q.push(np.arange(6, 14, dtype=np.float32))
    assert q.dropped == 4 and q.start == 4 and q.peek(100).tolist() == list(range(4, 14))


def test_pushes_from_another_thread_lose_nothing():
    q = AudioQueue()
    total = 200 * 97

    def pusher():
        for k in range(200):
            q.push(np.arange(97 * k, 97 * (k + 1), dtype=np.float32))

    t = threading.Thread(target=pusher)
    t.start()
    got = []
    while t.is_alive() or len(q):
        got.append(q.take(131))
    t.join()
    got.append(q.take(total))
    assert np.array_equal(np.concatenate(got), np.arange(total, dtype=np.float32)) and q.start == total


def test_a_chunk_bounded_by_talk_until_equals_one_with_nothing_pushed_past_it(speechlike):
    """The server queues the next utterance behind the current one; bounded chunks must not see it."""
    fe = AudioFrontend(AudioConfig(backend="mel"))
    first, second = speechlike[:10000], speechlike[10000:30000]
    bounded, alone = ChunkAudioEncoder(fe, None), ChunkAudioEncoder(fe, None)
    bounded.talk.push(np.concatenate([first, second]), 16000)
    alone.talk.push(first, 16000)
    for _ in range(2):  # 7680 samples, then the last 2320 (the look-ahead of the first chunk is within `first`)
        a, b = bounded.next_chunk(talk_until=first.size), alone.next_chunk()
        assert a.talk_samples == b.talk_samples
        torch.testing.assert_close(a.talk.windows, b.talk.windows, rtol=0, atol=0)
        torch.testing.assert_close(a.talk.slot_mask, b.talk.slot_mask, rtol=0, atol=0)
    assert bounded.talk.queue.start == first.size and len(bounded.talk.queue) == second.size
    unbounded = ChunkAudioEncoder(fe, None)
    unbounded.talk.push(np.concatenate([first, second]), 16000)
    unbounded.next_chunk()
    assert unbounded.next_chunk().talk_samples == 7680  # without the bound the second chunk runs on

"""The generator sees its audio look-ahead (the agent audio that follows a chunk in the same utterance, in its
own queue) without changing what each chunk consumes: frames and voice stay paired sample for sample, an
interrupt leaves nothing behind, the look-ahead never crosses into the next utterance (the server bounds each
step with ``talk_until``), and the 'drop' fall-behind policy skips speech after the samples the last chunk
looked ahead at."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streamavatar import constants as K
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from streamavatar.serve.sessions import SessionRuntime, open_session
from streamavatar.serve.simulation import av_offsets, sim_config, start_sim_session
from streamavatar.serve.virtual_time import run_virtual

SR = 16000
CHUNK = K.CHUNK_VIDEO_FRAMES * SR // K.VIDEO_FPS  # 7680
AHEAD = 1280  # 80 ms, the real engine's look-ahead at 16 kHz


def _sent_talk_audio(sim) -> np.ndarray:
    """The agent audio that left the server with generated talking frames, in order (int16). A slot that
    repeats the previous frame (silent, e.g. right after an interrupt) is skipped."""
    spf = SR // K.VIDEO_FPS
    by_pts = {round(a.pts_s * SR): a.pcm for a in sim.rec.audio}
    out, previous = [], None
    for v in sim.rec.video:
        repeated, previous = v.frame_code == previous, v.frame_code
        if v.talk_code and not repeated:
            start = round(v.pts_s * SR)
            out += [by_pts[start], by_pts[start + spf // 2]]
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def _lookahead_session_script(interrupt_at: float | None):
    async def main():
        pipe = FakeAvatarPipeline(64, 64, lookahead_samples=AHEAD)
        sim = await start_sim_session(pipeline=pipe)
        fake = sim.runtime._generator
        await asyncio.sleep(0.5)
        sim.say(5.0, pieces=3)  # 80000 samples: 10 full chunks + 3200
        if interrupt_at is not None:
            await asyncio.sleep(interrupt_at)
            sim.runtime.interrupt()
        await asyncio.sleep(7.0)
        sim.say(1.0)  # a second utterance after a pause
        await asyncio.sleep(3.0)
        await sim.close()
        return sim, fake

    return run_virtual(main())


def test_lookahead_is_pushed_and_frames_keep_their_own_audio():
    sim, fake = _lookahead_session_script(interrupt_at=None)
    talk_steps = [q for q in fake.talk_seen_at_step if q]
    # every chunk of the 5 s utterance but the last sees the 80 ms that follow it; the last sees only itself,
    # and the look-ahead never reaches into the second utterance (16000 samples = 2 full chunks + 640)
    assert talk_steps == [CHUNK + AHEAD] * 10 + [3200] + [CHUNK + AHEAD, CHUNK + 640, 640]
    offsets, muted = av_offsets(sim.rec, SR)
    assert offsets.size > 100 and offsets.max() == 0.0 and muted == 0
    sent = _sent_talk_audio(sim)
    assert (sent.astype(np.int64) == np.arange(96000) % 32768).all()  # every agent sample once, in order
    ended = [e for e in sim.rec.events if e["type"] == "speak_ended"]
    assert [e["played_ms"] for e in ended] == [5000.0, 1000.0]


def test_interrupt_drops_the_lookahead_too():
    sim, fake = _lookahead_session_script(interrupt_at=1.5)
    m = sim.runtime.metrics
    assert m.interrupts == 1 and m.interrupt_dropped_frames > 0
    sent = _sent_talk_audio(sim).astype(np.int64)
    # the second utterance (samples 80000..95999) plays from its first sample, in full: no stale look-ahead
    # of the interrupted one is left in the generator
    tail = sent[sent.size - 16000:]
    assert (tail == np.arange(80000, 96000) % 32768).all()
    assert (np.diff(sent[: sent.size - 16000]) == 1).all()  # the cut utterance played a gapless prefix
    offsets, _ = av_offsets(sim.rec, SR)
    assert offsets.max() == 0.0


class _SlowStep:
    """Wraps a fake session: each step takes ``seconds`` of simulated time (it blocks the virtual loop)."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def step(self, talk_until=None):
        asyncio.get_running_loop().advance(self.seconds)
        return self.inner.step(talk_until)


def test_drop_policy_skips_speech_after_the_lookahead():
    async def main():
        pipe = FakeAvatarPipeline(64, 64, lookahead_samples=AHEAD)
        sim = await start_sim_session(pipeline=pipe, config=sim_config(behind_policy="drop"))
        fake = sim.runtime._generator
        sim.runtime._generator = _SlowStep(fake, 0.62)  # real-time factor 1.3
        sim.say(10.0)
        await asyncio.sleep(8.0)
        await sim.close()
        return sim, fake

    sim, fake = run_virtual(main())
    m = sim.runtime.metrics
    assert m.repeated_frames > 0 and m.dropped_talk_frames > 0
    assert max(fake.talk_seen_at_step) == CHUNK + AHEAD
    sent = _sent_talk_audio(sim).astype(np.int64)
    steps = np.diff(sent) % 32768  # the ramp wraps at 2**15
    # speech only moves forward: gapless inside chunks, skips between them, never a repeat or a step back
    assert steps.min() == 1 and (steps > 1).any() and steps.max() < SR
    offsets, _ = av_offsets(sim.rec, SR)
    assert offsets.max() == 0.0


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from streamavatar.streaming.pipeline import load
    from streamavatar.streaming.random_model import write_random_model

    return load(str(write_random_model(tmp_path_factory.mktemp("tiny_model"))), threads=1, warmup=False)


class _QueueSpy:
    """Wraps a real engine session and records how much agent audio each step may read (its chunk and its
    look-ahead, bounded by ``talk_until``) and how much it consumed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.readable: list[int] = []
        self.consumed: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def step(self, talk_until=None):
        start = self.inner.talk_index
        self.readable.append(min(talk_until - start, CHUNK + self.inner.lookahead_samples))
        chunk = self.inner.step(talk_until)
        self.consumed.append(self.inner.talk_index - start)
        assert chunk.talk_samples == self.consumed[-1]
        return chunk


def test_real_engine_receives_its_lookahead(tiny_engine):
    assert tiny_engine.lookahead_samples == AHEAD

    async def main():
        sim = await start_sim_session(size=64, pipeline=tiny_engine)
        spy = _QueueSpy(sim.runtime._generator)
        sim.runtime._generator = spy
        sim.say(1.2)  # 19200 samples: two full chunks + 3840
        sim.say(0.5)  # queued right behind it in the session: 8000 samples, one chunk + 320
        await asyncio.sleep(3.0)
        await sim.close()
        return sim, spy

    sim, spy = run_virtual(main())
    # one chunk reads one utterance: the look-ahead and the last partial chunk stop at the boundary
    assert [q for q in spy.readable if q] == [CHUNK + AHEAD, CHUNK + AHEAD, 3840, CHUNK + 320, 320]
    assert [q for q in spy.consumed if q] == [CHUNK, CHUNK, 3840, CHUNK, 320]
    sent = _sent_talk_audio_engine(sim)
    gap = np.zeros(CHUNK - 3840, np.int64)  # the first utterance's last chunk ends in silence
    want = np.concatenate([np.arange(19200), gap, np.arange(19200, 27200)])
    assert np.array_equal(sent.astype(np.int64), want)  # the engine's chunks carry exactly the pushed audio


def test_real_engine_session_holds_the_only_copy(tiny_engine):
    from tests.serve.helpers import arrays_held

    async def main():
        config = sim_config(listen_backlog_s=0.5)
        gen = open_session(tiny_engine, np.zeros((64, 64, 3), np.uint8), config)
        rt = SessionRuntime("s", gen, tiny_engine.frame_size, tiny_engine.sample_rate, config)
        rt.speak_start()
        for k in range(3):
            rt.push_talk(np.arange(3000 * k, 3000 * (k + 1), dtype=np.int16))
        rt.push_listen(np.full(SR, 1000, np.int16))
        return rt, gen

    rt, gen = run_virtual(main())
    talk = gen._audio.talk.queue.peek(10**9)
    assert np.array_equal(talk, np.arange(9000, dtype=np.int16) / np.float32(32768))  # the engine's int16 reader
    assert gen.queued_talk_samples == 9000 and len(gen._audio.listen.queue) == SR // 2
    assert rt.metrics.listen_samples_dropped == gen.listen_samples_dropped == SR // 2  # one cap: the session's
    assert arrays_held(rt, skip=(gen,)) == []


def _sent_talk_audio_engine(sim) -> np.ndarray:
    """Agent audio sent while talking (the engine writes no frame codes; the audio track says it all)."""
    pcm = np.concatenate([a.pcm for a in sim.rec.audio])
    nz = np.flatnonzero(pcm)
    return pcm[nz[0] - 1: nz[-1] + 1] if nz.size else pcm[:0]


def test_real_engine_frames_leave_with_their_own_audio(tiny_engine):
    """The A/V check of bench_serve.py with a real model: frame codes stamped on the engine's frames after
    generation, utterances in pieces and an interrupt, 20 simulated seconds."""
    from streamavatar.serve.simulation import CodeStampingPipeline

    async def main():
        sim = await start_sim_session(size=64, pipeline=CodeStampingPipeline(tiny_engine))
        await asyncio.sleep(0.3)
        sim.say(3.1, pieces=4)
        await asyncio.sleep(4.0)
        sim.say(4.0, pieces=2)
        await asyncio.sleep(1.7)
        sim.runtime.interrupt()
        await asyncio.sleep(1.0)
        sim.say(2.3)
        await asyncio.sleep(20.0 - 7.0)
        await sim.close()
        return sim

    sim = run_virtual(main())
    assert len(sim.rec.video) >= 20 * K.VIDEO_FPS - 2
    offsets, muted = av_offsets(sim.rec, SR)
    assert offsets.size >= 0.9 * (3.1 + 1.7 + 2.3) * K.VIDEO_FPS
    assert muted <= sim.runtime.metrics.repeated_frames  # only a silent repeat of the last talking frame
    assert offsets.max() == 0.0
    codes = np.array([v.frame_code for v in sim.rec.video])
    assert (np.diff(codes) >= 0).all() and sim.runtime.metrics.interrupts == 1


def test_the_engine_warms_up_once(tiny_engine, monkeypatch):
    first = tiny_engine.warmup()  # loaded with warmup=False: this is its one warm-up
    assert first > 0 and tiny_engine.warmed_up

    def no_session(*a, **kw):
        raise AssertionError("a second warm-up made a session")

    monkeypatch.setattr(tiny_engine, "session", no_session)
    assert tiny_engine.warmup() == 0.0 and tiny_engine.warmup_s == first

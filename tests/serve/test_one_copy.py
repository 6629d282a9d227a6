"""The server holds no copy of the audio it is given: agent and user samples go straight into the generator
session's queues, the server keeps only utterance ids and boundaries, and what it reports as queued is read
from the session."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import websockets

from streamavatar import constants as K
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from streamavatar.serve.sessions import SessionRuntime, open_session
from streamavatar.serve.simulation import sim_config, start_sim_session
from streamavatar.serve.virtual_time import run_virtual
from streamavatar.serve.ws_protocol import encode_audio
from tests.serve.helpers import arrays_held, create_session, fake_config, ramp, running_server, wait_for

SR = 16000


def _queued(fake) -> np.ndarray:
    return fake._talk.peek(10**9)


def test_pushed_audio_is_in_the_session_queue_once_and_nowhere_in_the_server():
    async def main():
        pipe = FakeAvatarPipeline(64, 64)
        config = sim_config(listen_backlog_s=0.25)
        gen = open_session(pipe, np.zeros((64, 64, 3), np.uint8), config)
        rt = SessionRuntime("s", gen, pipe.frame_size, pipe.sample_rate, config)  # not started: nothing consumed
        first = rt.speak_start()
        rt.push_talk(ramp(0, 5000))
        rt.push_talk(ramp(5000, 3000))
        rt.speak_end()
        second = rt.push_talk(ramp(8000, 700))  # an implicit utterance behind the first
        rt.push_listen(ramp(0, 3 * SR))
        return rt, gen, first, second

    rt, gen, first, second = run_virtual(main())
    assert first != second
    assert np.array_equal(_queued(gen), ramp(0, 8700) / np.float32(32768))  # exactly the pushed samples
    assert gen.queued_talk_samples == 8700 and rt.metrics.talk_samples_in == 8700
    assert len(gen._listen) == 4000 and rt.metrics.listen_samples_dropped == gen.listen_samples_dropped == 44000
    assert arrays_held(rt, skip=(gen,)) == []  # the server object holds no sample buffer
    bounds = [(u.start, u.end) for u in rt._voice._queue]
    assert bounds == [(0, 8000), (8000, 8700)]


def test_agent_audio_sent_over_the_websocket_lands_in_the_session_queue():
    async def main():
        config = fake_config(prebuffer_s=10.0)  # the utterance cannot start within the test: nothing consumed
        async with running_server(config) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                rt = app.state.manager.get(s["session_id"])
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url) as ws:
                    await ws.send(json.dumps({"type": "speak_start"}))
                    for k in range(4):
                        await ws.send(encode_audio("talk", ramp(2000 * k, 2000)))
                    await wait_for(lambda: rt.metrics.talk_samples_in == 8000)
                    gen = rt._generator
                    assert np.array_equal(_queued(gen), ramp(0, 8000) / np.float32(32768))
                    assert rt.metrics.talk_samples_in == 8000 and gen.talk_index == 0
                    outputs = (rt._buffer, rt._last_frame)  # generated frames (silent), not input audio
                    assert arrays_held(rt, skip=(gen, *outputs)) == []

    asyncio.run(main())


def test_reported_queue_is_the_sessions():
    class Probe:
        def __init__(self, rt) -> None:
            self.rt, self.pairs = rt, []

        def deliver(self, slot, frame) -> None:
            self.pairs.append((self.rt.metrics.queue_talk_samples, self.rt._generator.queued_talk_samples))

    async def main():
        sim = await start_sim_session(pipeline=FakeAvatarPipeline(64, 64, lookahead_samples=1280))
        probe = Probe(sim.runtime)
        sim.runtime.add_sink(probe)
        sim.say(2.0, pieces=5)
        await asyncio.sleep(1.0)
        sim.say(1.0)
        await asyncio.sleep(3.0)
        await sim.close()
        return probe

    probe = run_virtual(main())
    assert all(a == b for a, b in probe.pairs) and max(a for a, _ in probe.pairs) > K.CHUNK_VIDEO_FRAMES * 640


def test_voice_queue_keeps_boundaries_and_bounds_each_chunk_to_one_utterance():
    from streamavatar.serve.agent_voice import AgentVoiceQueue, QueueFull

    q = AgentVoiceQueue(prebuffer_s=0.0, sample_rate=SR, max_samples=20000)
    a = q.start()
    q.admit(9000, queued=0)
    q.push(9000, 0.0, start=0)
    q.end()
    q.admit(3000, queued=9000)
    b = q.push(3000, 0.0, start=9000)  # an implicit utterance right behind the first
    with pytest.raises(QueueFull) as refused:
        q.admit(8001, queued=12000)
    assert refused.value.what == "samples"
    t1 = q.take(7680, 0.0, talk_index=0)
    assert (t1.utterance_id, t1.until, t1.samples, t1.is_last) == (a, 9000, 7680, False)
    q.skipped(320)  # the session dropped 320 samples of the playing utterance: later bounds move back
    assert q.playing_end() == 8680 and [(u.start, u.end) for u in q._queue] == [(0, 8680), (8680, 11680)]
    t2 = q.take(7680, 0.0, talk_index=7680)
    assert (t2.utterance_id, t2.until, t2.samples, t2.is_last, t2.underrun) == (a, 8680, 1000, True, False)
    t3 = q.take(7680, 1.0, talk_index=8680)  # the implicit one ended: no audio for prebuffer_s
    assert (t3.utterance_id, t3.until, t3.samples, t3.is_last) == (b, 11680, 3000, True)
    assert q.take(7680, 2.0, talk_index=11680) is None and q.playing_end() is None

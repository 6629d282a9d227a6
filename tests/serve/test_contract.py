"""CPU contract tests of the session core in simulated time (no waiting): A/V sync, drift, cadence, interrupt,
isolation. The fake generator writes frame index, agent-sample index and reference hash into the pixels."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streamavatar import constants as K
from streamavatar.serve.fake_generator import reference_hash
from streamavatar.serve.simulation import av_offsets, sim_config, start_sim_session
from streamavatar.serve.virtual_time import run_virtual

FRAME = 1.0 / K.VIDEO_FPS


def _script_10_minutes(seed: int = 0):
    """(time, action, arg) over 600 s: utterances of 0.3-5 s, whole or in pieces, silences, interrupts."""
    rng = np.random.default_rng(seed)
    t, script = 0.5, []
    while t < 590:
        seconds = float(rng.uniform(0.3, 5.0))
        script.append((t, "say", (seconds, int(rng.integers(1, 8)))))
        if rng.random() < 0.2:
            script.append((t + float(rng.uniform(0.2, seconds)), "interrupt", None))
        t += seconds + float(rng.uniform(0.0, 4.0))
    return script


async def _run_script(script, seconds: float):
    sim = await start_sim_session()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for at, action, arg in script:
        await asyncio.sleep(max(0.0, t0 + at - loop.time()))
        if action == "say":
            sim.say(*arg)
        else:
            sim.runtime.interrupt()
    await asyncio.sleep(max(0.0, t0 + seconds - loop.time()))
    await sim.close()
    return sim


def test_av_offset_within_one_frame_and_no_drift_over_10_simulated_minutes():
    sim = run_virtual(_run_script(_script_10_minutes(), 600.0))
    rec, m = sim.rec, sim.runtime.metrics
    assert len(rec.video) >= 600 * K.VIDEO_FPS - 2
    offsets, muted = av_offsets(rec, sim.runtime.sample_rate)
    assert offsets.size > 5000  # plenty of talking frames were checked
    assert muted == m.muted_frames == 0 and m.interrupts > 10  # interrupt_mode=drop: nothing sent muted
    assert offsets.max() <= FRAME  # |A - V| <= 40 ms, here in fact exactly 0
    # no cumulative drift: send time minus presentation time is the same at minute 0 and minute 10
    lag = np.array([v.sent_at - v.pts_s for v in rec.video])
    assert abs(lag[-100:].mean() - lag[:100].mean()) < 1e-3
    audio_lag = np.array([a.sent_at - a.pts_s for a in rec.audio])
    assert np.ptp(audio_lag) < 0.021  # the second 20 ms packet of a frame leaves with its video frame
    # generated frames are sent once, in order; only interrupts discard frames, and the count says so
    codes = np.array([v.frame_code for v in rec.video])
    assert (np.diff(codes) >= 1).all()
    assert (np.diff(codes) - 1).sum() == m.interrupt_dropped_frames > 0
    assert m.dropped_talk_frames == 0
    # every utterance that started also ended, and uninterrupted ones played in full
    started = [e for e in rec.events if e["type"] == "speak_started"]
    ended = {e["utterance_id"]: e for e in rec.events if e["type"] == "speak_ended"}
    assert len(started) > 100 and all(e["utterance_id"] in ended for e in started)
    full = [e for e in ended.values() if not e["interrupted"]]
    talk_frames = sum(1 for v in rec.video if v.talk_code)
    assert len(full) > 80 and talk_frames * 1000 / K.VIDEO_FPS >= sum(e["played_ms"] for e in full)


def test_cadence_steady_across_talk_silence_talk():
    async def main():
        sim = await start_sim_session()
        await asyncio.sleep(1.0)
        sim.say(2.0)
        await asyncio.sleep(5.0)  # 2 s of talk, then 3 s of silence
        sim.say(1.5, pieces=5)
        await asyncio.sleep(3.0)
        await sim.close()
        return sim

    sim = run_virtual(main())
    rec = sim.rec
    sent = np.array([v.sent_at for v in rec.video])
    assert np.allclose(np.diff(sent), FRAME, atol=1e-6)  # one frame every 40 ms, always
    pts = np.array([v.pts_s for v in rec.video])
    assert np.allclose(np.diff(pts), FRAME, atol=1e-9)
    states = [e["state"] for e in rec.events if e["type"] == "state"]
    assert states == ["idle", "talking", "idle", "talking", "idle"]
    talking = np.array([v.talk_code > 0 for v in rec.video])
    assert talking.sum() == round(3.5 * K.VIDEO_FPS)  # every frame of the 3.5 s of speech, no more
    assert sim.runtime.metrics.repeated_frames == 0


@pytest.mark.parametrize("mode", ["drop", "mute"])
def test_interrupt_latency_within_one_chunk_plus_pipeline_depth(mode):
    config = sim_config(interrupt_mode=mode)
    bound = K.CHUNK_SECONDS * (1 + config.lead_chunks) + FRAME
    latencies = []
    for phase in np.linspace(0.0, K.CHUNK_SECONDS, 7):
        async def main(phase=phase):
            sim = await start_sim_session(config=config)
            await asyncio.sleep(0.3)
            sim.say(8.0)
            await asyncio.sleep(2.0 + phase)
            t_interrupt = asyncio.get_running_loop().time()
            sim.runtime.interrupt()
            await asyncio.sleep(2.0)
            await sim.close()
            return sim, t_interrupt

        sim, t_interrupt = run_virtual(main())
        rec = sim.rec
        done = [e for e in rec.events if e["type"] == "interrupt_done"]
        assert len(done) == 1 and done[0]["latency_s"] <= bound, (phase, done)
        ended = [e for e in rec.events if e["type"] == "speak_ended"]
        assert len(ended) == 1 and ended[0]["interrupted"]
        first_talk = next(v.sent_at for v in rec.video if v.talk_code)
        assert abs(ended[0]["played_ms"] / 1000 - (t_interrupt - first_talk)) <= FRAME  # what was heard
        # the agent's voice stops at once: no agent sample leaves after the interrupt
        after = [a for a in rec.audio if a.sent_at > t_interrupt + 1e-9]
        assert after and all(not a.pcm.any() for a in after)
        # and the avatar is not talking once the latency has passed
        late = [v for v in rec.video if v.sent_at >= t_interrupt + done[0]["latency_s"]]
        assert late and all(v.talk_code == 0 for v in late)
        latencies.append(done[0]["latency_s"])
    if mode == "drop":  # frames not yet sent are discarded: listening with the next slot (generation is instant)
        assert max(latencies) <= FRAME + 1e-9
    else:  # they play out silently first
        assert max(latencies) > K.CHUNK_SECONDS / 2


def test_two_sessions_receive_only_their_own_frames_and_events():
    async def main():
        a = await start_sim_session("a", color=(220, 20, 20))
        b = await start_sim_session("b", color=(20, 20, 220))
        await asyncio.sleep(0.5)
        a.say(2.0)
        await asyncio.sleep(4.0)
        a.runtime.interrupt()
        b.runtime.set_listen_mode("on")
        await asyncio.sleep(1.0)
        await a.close()
        await b.close()
        return a, b

    a, b = run_virtual(main())
    ref_a = np.zeros((64, 64, 3), np.uint8)
    ref_a[:] = (220, 20, 20)
    ref_b = np.zeros((64, 64, 3), np.uint8)
    ref_b[:] = (20, 20, 220)
    assert {v.ref_code for v in a.rec.video} == {reference_hash(ref_a)}
    assert {v.ref_code for v in b.rec.video} == {reference_hash(ref_b)}
    assert any(v.talk_code for v in a.rec.video) and not any(v.talk_code for v in b.rec.video)
    assert not any(a_.pcm.any() for a_ in b.rec.audio)
    assert {e["session_id"] for e in a.rec.events} == {"a"}
    assert {e["session_id"] for e in b.rec.events} == {"b"}
    assert any(e["type"] == "speak_started" for e in a.rec.events)
    assert not any(e["type"].startswith("speak") or e["type"] == "interrupt_done" for e in b.rec.events)
    assert any(e["type"] == "listen_mode" for e in b.rec.events)
    assert not any(e["type"] == "listen_mode" for e in a.rec.events)


def test_unframed_real_time_agent_audio_plays_as_one_gapless_utterance():
    """A speech source that sends 100 ms pieces in real time, with no speak_start/speak_end: the prebuffer
    absorbs the arrival jitter, so the utterance plays without underruns and ends by itself."""

    async def main():
        sim = await start_sim_session()
        await asyncio.sleep(0.7)
        for k in range(30):  # 3 s of speech, as it is produced
            sim.runtime.push_talk(((np.arange(1600) + 1600 * k) % 32768).astype(np.int16))
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)
        await sim.close()
        return sim

    sim = run_virtual(main())
    events = sim.rec.events
    assert [e["type"] for e in events if e["type"].startswith("speak")] == ["speak_started", "speak_ended"]
    ended = next(e for e in events if e["type"] == "speak_ended")
    assert ended["played_ms"] == 3000.0 and not ended["interrupted"]
    # the last partial chunk counts as an underrun: without speak_end the end is only known afterwards
    assert sim.runtime.metrics.talk_underrun_chunks <= 1
    talk = [(v.frame_code, v.talk_code - 1) for v in sim.rec.video if v.talk_code]
    assert len(talk) == 75
    for (fa, a), (fb, b) in zip(talk, talk[1:], strict=False):
        assert fb == fa + 1 and (b - a) % 32768 == 640  # consecutive frames, consecutive audio: no gap

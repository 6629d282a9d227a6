"""LiveKit's own ``AvatarRunner`` driving the generator in a stand-in room (no server), the way LiveKit tests
its avatars: real speech plays and ``playback_finished`` reports its true length; a barge-in mid-utterance
stops talking within one chunk and reports ``interrupted=True`` with the position; the user's microphone
drives listening; 10 start/stop cycles leave no task or thread behind.

These run at the wall clock (the runner paces frames at 25 fps), a few seconds each; nothing here asserts a
duration of wall time. Skipped without the ``[livekit]`` extra (CI runs them in its own environment).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason='needs the [livekit] extra: pip install "streamavatar[livekit]"')

import soundfile as sf  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AvatarRunner, QueueAudioOutput, VideoGenerator  # noqa: E402

import streamavatar as sa  # noqa: E402
from streamavatar.integrations.livekit import LocalAvatar, StreamAvatarVideoGenerator  # noqa: E402
from streamavatar.serve import frame_code  # noqa: E402
from streamavatar.serve.fake_generator import FakeAvatarPipeline  # noqa: E402
from streamavatar.streaming.default_assets import bundled_inputs  # noqa: E402
from streamavatar.streaming.random_model import write_random_model  # noqa: E402
from tests.integrations.standin_room import RemoteParticipant, StandInRoom  # noqa: E402
from tests.integrations.test_livekit_generator import frames_of, ramp  # noqa: E402

FRAME_S = 1 / 25


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """The real engine (audio front-end, DiT, VAE) with a small random DiT: fast enough for real time here."""
    return sa.load(str(write_random_model(tmp_path_factory.mktemp("random-model"))))


def _face(size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), 120, np.uint8)


class Recorder(VideoGenerator):
    """Passes a generator through and logs what the runner got: (kind, state, payload)."""

    def __init__(self, gen: StreamAvatarVideoGenerator) -> None:
        self.gen = gen
        self.log: list[tuple] = []

    async def push_audio(self, frame) -> None:
        await self.gen.push_audio(frame)

    async def clear_buffer(self) -> None:
        self.log.append(("clear", None, None))
        await self.gen.clear_buffer()

    def __aiter__(self):
        return self._items()

    async def _items(self):
        async for item in self.gen:
            if isinstance(item, rtc.VideoFrame):
                self.log.append(("video", self.gen.current_state, item))
            elif isinstance(item, rtc.AudioFrame):
                self.log.append(("audio", None, item.duration))
            else:
                self.log.append(("end", None, None))
            yield item


def test_real_speech_plays_and_playback_finished_reports_its_true_length(tiny_engine):
    _, speech = bundled_inputs()
    pcm, rate = sf.read(str(speech), dtype="int16")
    true_s = pcm.size / rate

    async def main():
        room = StandInRoom("agent-1")
        avatar = LocalAvatar(tiny_engine, _face(), audio_sample_rate=24000)
        started, finished = [], asyncio.get_running_loop().create_future()
        avatar.audio.on("playback_started", lambda ev: started.append(ev))
        avatar.audio.on("playback_finished", lambda ev: finished.done() or finished.set_result(ev))
        await avatar.start(None, room)
        for f in frames_of(pcm, rate):
            await avatar.audio.capture_frame(f)
        avatar.audio.flush()
        ev = await asyncio.wait_for(finished, 120)
        kinds = sorted(p.track.kind for p in room.local_participant.published)
        metrics = avatar.generator.metrics.summary()
        await avatar.aclose()
        return ev, started, kinds, metrics

    ev, started, kinds, metrics = asyncio.run(main())
    assert ev.interrupted is False
    assert abs(ev.playback_position - true_s) <= FRAME_S, (ev.playback_position, true_s)
    assert len(started) == 1
    assert kinds == sorted([rtc.TrackKind.KIND_AUDIO, rtc.TrackKind.KIND_VIDEO])  # both tracks published
    assert metrics["state_frames"].get("talking", 0) >= int(true_s * 25)
    assert len(metrics["ttff_s"]) == 1


@pytest.mark.parametrize("mode", ["drop", "mute"])
def test_barge_in_mid_utterance_stops_talking_within_one_chunk_and_reports_the_position(mode):
    async def main():
        room = StandInRoom("agent-1")
        audio = QueueAudioOutput(sample_rate=16000)
        gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(64, 64), _face(), audio_sample_rate=16000,
                                         interrupt_mode=mode)
        rec = Recorder(gen)
        runner = AvatarRunner(room, audio_recv=audio, video_gen=rec, options=gen.options)
        gen.attach_av_sync(runner.av_sync)
        finished = asyncio.get_running_loop().create_future()
        audio.on("playback_finished", lambda ev: finished.done() or finished.set_result(ev))
        await runner.start()
        for f in frames_of(ramp(0, 6 * 16000), 16000):
            await audio.capture_frame(f)
        audio.flush()
        while sum(1 for k, _, _ in rec.log if k == "audio") < 40:  # about 1.6 s of voice handed over
            await asyncio.sleep(0.01)
        audio.clear_buffer()  # what the agent does on barge-in
        ev = await asyncio.wait_for(finished, 30)
        await asyncio.sleep(1.0)  # let the stream go on for a while after the interrupt
        await runner.aclose()
        await gen.aclose()
        return ev, rec.log, gen.metrics.summary()

    ev, log, metrics = asyncio.run(main())
    cut = next(i for i, (k, _, _) in enumerate(log) if k == "clear")
    voiced_s = sum(d for k, _, d in log[:cut] if k == "audio")
    assert ev.interrupted is True
    assert 1.0 < ev.playback_position < 6.0
    assert abs(ev.playback_position - voiced_s) <= FRAME_S + 1e-6  # the runner counts what it has pushed
    after = log[cut + 1:]
    assert not any(k in ("audio", "end") for k, _, _ in after)  # the voice stops at once
    talking_after = [v for k, s, v in after if k == "video" and s == "talking"]
    assert len(talking_after) <= 12  # within one chunk (drop: none; mute: the talking frames play silent)
    talk_codes = [frame_code.read_code(np.frombuffer(v.data, np.uint8).reshape(64, 64, 4)[..., :3],
                                       frame_code.ROW_TALK_SAMPLE) for k, s, v in after if k == "video"]
    if mode == "drop":
        assert not any(talk_codes) and metrics["dropped_frames"] > 0
    else:
        assert sum(1 for c in talk_codes if c) <= 24  # muted frames: the chunk in flight and the one queued
    assert sum(1 for k, _, _ in after if k == "video") >= 20  # frames keep flowing (listening / idle)
    assert len(metrics["interrupt_latency_s"]) == 1


def test_the_users_microphone_drives_listening_and_the_agents_own_audio_is_ignored():
    noise = (np.random.default_rng(0).standard_normal(16000 * 20) * 8000).astype(np.int16)
    opened = []

    async def mic(track):
        opened.append(track)
        for f in frames_of(noise, 16000):
            yield f
            await asyncio.sleep(0.02)

    async def main():
        room = StandInRoom("agent-1")
        room.add_participant(RemoteParticipant("other-agent", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT))
        room.add_microphone("other-agent")
        avatar = LocalAvatar(FakeAvatarPipeline(64, 64), _face(), listen_stream_factory=mic)
        await avatar.start(None, room)
        assert avatar.feed.participant is None  # agents are not the user
        room.add_participant(RemoteParticipant("user-1"))
        room.add_microphone("user-1")
        await asyncio.sleep(2.0)
        who = avatar.feed.participant
        metrics = avatar.generator.metrics.summary()
        await avatar.aclose()
        return who, metrics

    who, metrics = asyncio.run(main())
    assert who == "user-1" and len(opened) == 1
    assert metrics["state_frames"].get("listening", 0) >= 12


def test_ten_start_stop_cycles_leave_no_task_or_thread_behind(tiny_engine):
    async def cycle():
        room = StandInRoom("agent-1")
        avatar = LocalAvatar(tiny_engine, _face(), audio_sample_rate=24000)
        await avatar.start(None, room)
        for f in frames_of(ramp(0, 8000), 16000):
            await avatar.audio.capture_frame(f)
        avatar.audio.flush()
        await asyncio.sleep(0.3)  # close mid-utterance, with a step in flight
        await avatar.aclose()

    async def main():
        threads0 = {t.ident for t in threading.enumerate()}
        for _ in range(10):
            await cycle()
        await asyncio.sleep(0.1)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        left = [t for t in threading.enumerate() if t.ident not in threads0]
        return tasks, left

    tasks, left = asyncio.run(main())
    assert tasks == []
    assert left == [], [t.name for t in left]

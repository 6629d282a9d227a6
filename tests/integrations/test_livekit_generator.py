"""The LiveKit VideoGenerator on its own: exact audio per frame, utterance ends, barge-in, 2 minutes of A/V.

Skipped without the ``[livekit]`` extra; CI runs it in that extra's own virtual environment (.ci/extras.sh).
The consumer here takes frames as fast as they come (no wall clock), so minutes of stream take seconds.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason='needs the [livekit] extra: pip install "streamavatar[livekit]"')

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd  # noqa: E402

from streamavatar.integrations.livekit import StreamAvatarVideoGenerator  # noqa: E402
from streamavatar.integrations.livekit.generator import Resampler, frame_to_mono  # noqa: E402
from streamavatar.serve import frame_code  # noqa: E402
from streamavatar.serve.fake_generator import FakeAvatarPipeline  # noqa: E402

SIZE = 64
FPS = 25


def ramp(start: int, n: int) -> np.ndarray:
    """PCM16 whose sample k carries (start + k) mod 2**15, so every sample says where it came from."""
    return ((np.arange(start, start + n)) % 32768).astype(np.int16)


def frames_of(pcm: np.ndarray, rate: int, ms: int = 20) -> list[rtc.AudioFrame]:
    step = rate * ms // 1000
    return [rtc.AudioFrame(pcm[i:i + step].tobytes(), rate, 1, pcm[i:i + step].size) for i in range(0, pcm.size, step)]


def code(frame: rtc.VideoFrame, row: int) -> int:
    rgba = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 4)
    return frame_code.read_code(rgba[..., :3], row)


def _schedule(seconds: float, seed: int) -> list[tuple[int, int, int]]:
    """Utterances (start frame, 16 kHz sample offset of the ramp, length in samples) over ``seconds``."""
    rng = np.random.default_rng(seed)
    out, t, offset = [], 10, 0
    while True:
        n = int(rng.uniform(0.3, 6.0) * 16000)
        if (t + n // 640 + 60) / FPS > seconds:
            return out
        out.append((t, offset, n))
        offset += n
        t += n // 640 + int(rng.integers(5, 60))


async def _run(gen: StreamAvatarVideoGenerator, schedule, total_frames: int, *, rate: int = 16000,
               clear_at: dict[int, int] | None = None):
    """Consume ``total_frames`` video frames; push each utterance when its start frame is reached (all of it at
    once, like a TTS faster than real time), then its end. ``clear_at`` maps a frame number to a barge-in."""
    items: list = []
    videos = 0
    pending = list(schedule)
    clear_at = dict(clear_at or {})
    async for item in gen:
        items.append(item)
        if isinstance(item, rtc.VideoFrame):
            videos += 1
            while pending and pending[0][0] <= videos:
                _, offset, n = pending.pop(0)
                pcm = ramp(offset, n) if rate == 16000 else ramp(offset * rate // 16000, n * rate // 16000)
                for f in frames_of(pcm, rate):
                    await gen.push_audio(f)
                await gen.push_audio(AudioSegmentEnd())
            if videos in clear_at:
                await gen.clear_buffer()
            if videos >= total_frames:
                break
    await gen.aclose()
    return items


def test_two_minutes_every_voice_sample_leaves_with_the_frame_made_from_it():
    seconds = 120
    sched = _schedule(seconds, seed=1)
    gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                     audio_sample_rate=16000, fill_stalls=False)
    items = asyncio.run(_run(gen, sched, seconds * FPS))
    videos = [i for i, it in enumerate(items) if isinstance(it, rtc.VideoFrame)]
    assert len(videos) == seconds * FPS
    assert [code(items[i], frame_code.ROW_FRAME) for i in videos] == list(range(len(videos)))  # no gaps, no repeats
    # Each audio frame follows the video frame that was generated from it: its first sample is the first agent
    # sample the fake recorded in that frame (offset 0 frames), and it holds at most one frame of audio.
    talking_frames = 0
    last_video = None
    offsets = []
    for it in items:
        if isinstance(it, rtc.VideoFrame):
            last_video = it
            if code(it, frame_code.ROW_TALK_SAMPLE):
                talking_frames += 1
        elif isinstance(it, rtc.AudioFrame):
            first = int(np.frombuffer(it.data, np.int16)[0])
            expected = code(last_video, frame_code.ROW_TALK_SAMPLE) - 1
            offsets.append((first - expected) % 32768)
            assert it.samples_per_channel <= 640 and it.sample_rate == 16000
    assert offsets and max(offsets) == 0
    # Every utterance plays in full, in order, and is followed by exactly one AudioSegmentEnd.
    played, current = [], []
    for it in items:
        if isinstance(it, rtc.AudioFrame):
            current.append(np.frombuffer(it.data, np.int16))
        elif isinstance(it, AudioSegmentEnd):
            played.append(np.concatenate(current))
            current = []
    assert not current
    assert len(played) == len(sched)
    for (_, offset, n), got in zip(sched, played, strict=True):
        np.testing.assert_array_equal(got, ramp(offset, n))
    assert talking_frames == sum(-(-n // 640) for _, _, n in sched)
    m = gen.metrics.summary()
    assert m["segments_finished"] == len(sched) and m["repeated_frames"] == 0


def test_agent_voice_at_24khz_is_published_as_is_and_cut_at_the_frames():
    sched = [(5, 0, 3 * 16000 + 123), (150, 60000, 16000)]
    gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                     audio_sample_rate=24000, fill_stalls=False)
    items = asyncio.run(_run(gen, sched, 300, rate=24000))
    played, current, sizes = [], [], []
    for it in items:
        if isinstance(it, rtc.AudioFrame):
            assert it.sample_rate == 24000
            sizes.append(it.samples_per_channel)
            current.append(np.frombuffer(it.data, np.int16))
        elif isinstance(it, AudioSegmentEnd):
            played.append(np.concatenate(current))
            current = []
    assert len(played) == 2
    for (_, offset, n), got in zip(sched, played, strict=True):
        np.testing.assert_array_equal(got, ramp(offset * 24000 // 16000, n * 24000 // 16000))
    assert max(sizes) == 960  # one frame's worth at 24 kHz, never more


def test_barge_in_stops_the_voice_within_one_chunk_and_listening_goes_on():
    sched = [(5, 0, 8 * 16000)]
    gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                     audio_sample_rate=16000, fill_stalls=False)
    items = asyncio.run(_run(gen, sched, 250, clear_at={60: 1}))
    video_idx = [i for i, it in enumerate(items) if isinstance(it, rtc.VideoFrame)]
    cut = video_idx[59]  # the clear came right after the 60th frame was taken
    after = items[cut + 1:]
    talking_after = [it for it in after if isinstance(it, rtc.VideoFrame) and code(it, frame_code.ROW_TALK_SAMPLE)]
    assert len(talking_after) <= 12  # drop mode: none at all in practice
    assert not any(isinstance(it, rtc.AudioFrame | AudioSegmentEnd) for it in after)  # no voice, no stale end
    assert sum(1 for it in after if isinstance(it, rtc.VideoFrame)) == 250 - 60  # the stream goes on
    assert gen.metrics.segments_interrupted == 1 and gen.metrics.interrupt_latency_s


def test_mute_mode_keeps_the_frames_and_silences_them():
    sched = [(5, 0, 8 * 16000)]
    gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                     audio_sample_rate=16000, fill_stalls=False, interrupt_mode="mute")
    items = asyncio.run(_run(gen, sched, 200, clear_at={40: 1}))
    video_idx = [i for i, it in enumerate(items) if isinstance(it, rtc.VideoFrame)]
    after = items[video_idx[39] + 1:]
    assert not any(isinstance(it, rtc.AudioFrame | AudioSegmentEnd) for it in after)
    codes = [code(it, frame_code.ROW_FRAME) for it in items if isinstance(it, rtc.VideoFrame)]
    assert codes == list(range(len(codes)))  # nothing dropped: motion stays continuous


def test_an_end_without_audio_is_ignored_and_listening_audio_is_accepted():
    async def main():
        gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                         audio_sample_rate=16000, fill_stalls=False)
        await gen.push_audio(AudioSegmentEnd())  # e.g. the stale end a receiver sends after a clear
        noise = (np.random.default_rng(0).standard_normal(48000 * 2) * 6000).astype(np.int16)
        for f in frames_of(noise, 48000):
            gen.push_listen_audio(f)
        items = []
        async for item in gen:
            items.append(item)
            if sum(isinstance(i, rtc.VideoFrame) for i in items) >= 48:
                break
        await gen.aclose()
        return gen, items
    gen, items = asyncio.run(main())
    assert not any(isinstance(it, AudioSegmentEnd | rtc.AudioFrame) for it in items)
    assert gen.metrics.segments_finished == 0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="interrupt_mode"):
        StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), None, interrupt_mode="pause")
    with pytest.raises(ValueError, match="multiple of 25"):
        StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), None, audio_sample_rate=22049)


def test_real_engine_chunks_pair_each_voice_sample_with_its_frame(tmp_path):
    """The same pairing on the real engine (audio front-end, DiT, VAE; a small random DiT so it is quick):
    every utterance starts on a chunk boundary and its k-th audio frame follows the k-th frame from there."""
    import streamavatar as sa
    from streamavatar.streaming.random_model import write_random_model

    pipe = sa.load(str(write_random_model(tmp_path / "model")))
    sched = [(5, 0, 2 * 16000 + 500), (140, 40000, 3 * 16000), (330, 100000, 7680)]
    gen = StreamAvatarVideoGenerator(pipe, np.full((64, 64, 3), 120, np.uint8), audio_sample_rate=16000,
                                     fill_stalls=False)
    items = asyncio.run(_run(gen, sched, 500))
    frame_no, seg, k, starts = -1, 0, 0, []
    for it in items:
        if isinstance(it, rtc.VideoFrame):
            frame_no += 1
        elif isinstance(it, rtc.AudioFrame):
            if k == 0:
                starts.append(frame_no)
            _, offset, n = sched[seg]
            np.testing.assert_array_equal(np.frombuffer(it.data, np.int16),
                                          ramp(offset + 640 * k, min(640, n - 640 * k)))
            assert frame_no == starts[-1] + k  # offset 0: audio frame k rides on video frame start + k
            k += 1
        elif isinstance(it, AudioSegmentEnd):
            assert 640 * k >= sched[seg][2]
            seg, k = seg + 1, 0
    assert seg == len(sched)
    assert all(s % 12 == 0 for s in starts)  # utterances start on a chunk boundary


def _queued_talk(session) -> np.ndarray:
    """The agent samples queued in a session (the fake's or the engine's queue, read without consuming)."""
    queue = session._talk if hasattr(session, "_talk") else session._audio.talk.queue
    return queue.peek(len(queue))


@pytest.mark.parametrize("engine", ["fake", "real"])
def test_agent_audio_is_queued_in_the_session_only(engine, tmp_path):
    """One audio path (#17): what the runner pushes lands in the engine session's queue, exactly, and the
    generator keeps no sample array of it (only the boundaries); a step reads nothing of an utterance that is
    still prebuffering."""
    from tests.serve.helpers import arrays_held

    if engine == "real":
        import streamavatar as sa
        from streamavatar.streaming.random_model import write_random_model

        pipe = sa.load(str(write_random_model(tmp_path / "model")))
    else:
        pipe = FakeAvatarPipeline(SIZE, SIZE)

    async def main():
        gen = StreamAvatarVideoGenerator(pipe, np.full((SIZE, SIZE, 3), 90, np.uint8),
                                         audio_sample_rate=16000, prebuffer_timeout_s=1e9, fill_stalls=False)
        pcm = ramp(0, 5000)  # under the prebuffer (one chunk): the utterance waits for more or for its end
        for f in frames_of(pcm, 16000):
            await gen.push_audio(f)
        videos = 0
        async for item in gen:  # two chunks are generated meanwhile, both idle
            videos += isinstance(item, rtc.VideoFrame)
            if videos >= 24:
                break
        session = gen._session
        held = arrays_held(gen, skip=(session, gen._out, gen._reference))  # frames and the image: not audio
        queued, index, utt = _queued_talk(session), session.talk_index, gen._utterances[0]
        bounds = (utt.start, utt.end)
        await gen.aclose()
        return queued, index, held, bounds, pcm

    queued, index, held, bounds, pcm = asyncio.run(main())
    np.testing.assert_array_equal(queued, pcm.astype(np.float32) / 32768.0)  # exactly the pushed samples
    assert index == 0 and bounds == (0, 5000)
    assert held == []  # the generator holds no sample buffer


def test_at_another_voice_rate_only_the_published_voice_is_kept():
    """At 24 kHz the published voice is the agent's own audio, so that (and the resamplers' filter history)
    is all the generator keeps; the session's queue holds the 16 kHz feed."""
    from tests.serve.helpers import arrays_held

    async def main():
        gen = StreamAvatarVideoGenerator(FakeAvatarPipeline(SIZE, SIZE), np.full((SIZE, SIZE, 3), 90, np.uint8),
                                         audio_sample_rate=24000, prebuffer_timeout_s=1e9, fill_stalls=False)
        pcm = ramp(0, 12000)  # 0.25 s at 48 kHz
        for f in frames_of(pcm, 48000):
            await gen.push_audio(f)
        session = gen._session
        held = arrays_held(gen, skip=(session, gen._reference))
        fed, taped = _queued_talk(session), gen._tape.peek(len(gen._tape))
        await gen.aclose()
        return held, fed, taped, pcm

    held, fed, taped, pcm = asyncio.run(main())
    assert held and all(p.startswith("._tape.") or "._rs[" in p for p in held), held
    feed_rs, tape_rs = Resampler(48000, 16000), Resampler(48000, 24000)  # the same streams, resampled alone
    parts = [frame_to_mono(f) for f in frames_of(pcm, 48000)]
    np.testing.assert_array_equal(fed, np.concatenate([feed_rs.push(x) for x in parts]))
    # LiveKit's resampler (the 24 kHz tape) works in int16 and two runs may differ by an LSB or two
    np.testing.assert_allclose(taped, np.concatenate([tape_rs.push(x) for x in parts]), rtol=0, atol=4 / 32768)
    assert 3900 < fed.size <= 4000 and 5000 < taped.size <= 6000  # less what the resamplers hold back


def test_a_step_never_reads_past_the_playing_utterance():
    """Two utterances queued back to back: each step is bounded at the playing one's end, so its look-ahead
    never sees the next utterance (which waits in the same session queue)."""
    look = 1280
    pipe = FakeAvatarPipeline(SIZE, SIZE, lookahead_samples=look)

    async def main():
        gen = StreamAvatarVideoGenerator(pipe, np.full((SIZE, SIZE, 3), 90, np.uint8), audio_sample_rate=16000,
                                         fill_stalls=False)
        await gen.start()
        for offset, n in ((0, 10000), (10000, 9000)):  # pushed before the first step runs
            for f in frames_of(ramp(offset, n), 16000):
                await gen.push_audio(f)
            await gen.push_audio(AudioSegmentEnd())
        ends, videos = 0, 0
        async for item in gen:
            ends += isinstance(item, AudioSegmentEnd)
            videos += isinstance(item, rtc.VideoFrame)
            if ends == 2 or videos > 200:
                break
        seen = [s for s in gen._session.talk_seen_at_step if s]
        await gen.aclose()
        return ends, seen

    ends, seen = asyncio.run(main())
    assert ends == 2
    # 10000 = 7680 (+ a full look-ahead) + 2320 (nothing beyond the end); 9000 = 7680 (+ 1280) + 1320
    assert seen == [7680 + look, 2320, 7680 + look, 1320]

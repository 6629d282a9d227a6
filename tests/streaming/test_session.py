"""The session API on a small random model: chunk contract, audio alignment, decode equivalence, determinism,
talk/listen/interrupt behaviour, overlap = serial."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar import constants as K
from streamavatar.audio.io import load_pcm
from streamavatar.errors import UserInputError
from streamavatar.serve.generator import AvatarPipeline, AvatarSession, validate_chunk
from streamavatar.streaming.pipeline import frames_to_uint8

N = K.CHUNK_VIDEO_FRAMES * 640  # 16 kHz samples per chunk
REF = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_protocols_and_contract(small_pipe, speechlike):
    assert isinstance(small_pipe, AvatarPipeline)
    s = small_pipe.session(REF)
    assert isinstance(s, AvatarSession)
    s.push_talk_audio(speechlike[:N + 100], 16000)
    chunks = [s.step() for _ in range(3)]
    for i, c in enumerate(chunks):
        validate_chunk(c, small_pipe.frame_size)
        assert c.start_time == pytest.approx(i * K.CHUNK_SECONDS) and c.index == i
    assert [c.talk_samples for c in chunks] == [N, 100, 0]
    assert [c.state for c in chunks][:2] == ["talking", "talking"] and chunks[2].state != "talking"
    m = s.metrics.summary()
    assert m["chunks"] == 3 and m["rtf"] > 0 and m["ffd_s"] > 0 and m["chunk_ms"]["p95"] >= m["chunk_ms"]["p50"]


def test_chunk_audio_is_exactly_the_pushed_audio(small_pipe, speechlike):
    s = small_pipe.session(REF)
    pushed = speechlike[: 2 * N + 1234]
    for piece in np.array_split(pushed, 7):  # arbitrary push sizes
        s.push_talk_audio(piece, 16000)
    out = np.concatenate([s.step().audio for _ in range(3)])
    np.testing.assert_array_equal(out[:pushed.size], pushed)
    assert not out[pushed.size:].any()
    # another rate: the chunk carries the 16 kHz samples the model used
    s2 = small_pipe.session(REF)
    x48 = np.repeat(speechlike[:8000], 3)
    s2.push_talk_audio(x48, 48000)
    c = s2.step()
    np.testing.assert_array_equal(c.audio[: c.talk_samples], load_pcm(x48, 48000)[:N])


def test_streaming_decode_equals_full_decode(small_pipe, speechlike):
    s = small_pipe.session(REF, keep_latents=True)
    s.push_talk_audio(speechlike, 16000)
    chunks = [s.step() for _ in range(3)]
    z = torch.cat([s.reference_latent.cpu()] + [c.latents for c in chunks], dim=2)
    vae = small_pipe.vae
    full = frames_to_uint8(vae.decode(z.to(vae.dtype)))
    assert full.shape[0] == 1 + 3 * K.CHUNK_VIDEO_FRAMES
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), full[1:])
    np.testing.assert_array_equal(s.reference_frame, full[0])


def _run(pipe, seed, n=2, submit_ahead=False, speech=None):
    s = pipe.session(REF, seed=seed)
    if speech is not None:
        s.push_talk_audio(speech, 16000)
    if submit_ahead:
        out = list(s.run(n + 1))[:n]  # pipelined: chunk k+1 submitted before chunk k is collected
    else:
        out = [s.step() for _ in range(n)]
    s.close()
    return np.concatenate([c.frames for c in out])


def test_determinism_and_overlap_equals_serial(small_pipe, small_model_dir, speechlike):
    from streamavatar.streaming.pipeline import load

    a = _run(small_pipe, 5, n=3, speech=speechlike)
    b = _run(small_pipe, 5, n=3, speech=speechlike, submit_ahead=True)
    c = _run(small_pipe, 6, n=3, speech=speechlike)
    no_thread = load(str(small_model_dir), threads=1, warmup=False, overlap=False)
    d = _run(no_thread, 5, n=3, speech=speechlike, submit_ahead=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, d)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1


def test_talk_only_listen_only_both_and_idle(small_pipe, speechlike):
    s = small_pipe.session(REF)
    assert s.step().state == "idle"
    s.push_listen_audio(speechlike[:N], 16000)
    c = s.step()
    assert c.state == "listening" and c.talk_samples == 0 and not c.audio.any()
    np.testing.assert_array_equal(c.listen_audio, speechlike[:N])
    s.push_talk_audio(speechlike[:N], 16000)
    s.push_listen_audio(speechlike[N:2 * N], 16000)
    assert s.step().state == "talking"
    s.push_talk_audio(speechlike[:N], 16000)
    assert s.step().state == "talking"


def test_interrupt_stops_speech_within_one_chunk(small_pipe, speechlike):
    s = small_pipe.session(REF)
    s.push_talk_audio(speechlike, 16000)  # 3 s queued
    assert s.step().state == "talking"
    s.interrupt()
    s.push_listen_audio(speechlike[:N], 16000)
    c = s.step()
    assert c.state == "listening" and c.talk_samples == 0 and not c.audio.any()
    s.push_listen_audio(speechlike[N:2 * N], 16000)
    assert s.step().state == "listening"  # the stream goes on listening


def test_listen_backlog_is_bounded(small_pipe, speechlike):
    s = small_pipe.session(REF, listen_backlog_s=0.5)
    s.push_listen_audio(speechlike, 16000)
    c = s.step()  # only the newest 0.5 s was kept: the chunk hears the end of the pushed audio
    np.testing.assert_array_equal(c.listen_audio, speechlike[-8000:][:N])


@pytest.mark.parametrize("image", [
    np.zeros((64, 64), np.uint8),                                  # grayscale
    np.zeros((40, 90, 4), np.uint8),                               # RGBA, not square
    np.zeros((64, 64, 1), np.uint8),
])
def test_image_arrays_accepted(small_pipe, image):
    c = small_pipe.session(image).step()
    assert c.frames.shape == (12, 64, 64, 3)


@pytest.mark.parametrize("image, words", [
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    (np.zeros((64, 64, 2), np.uint8), "HxWx3"),
    (np.zeros((8, 8, 3), np.uint8), "at least"),
    ("/no/such/file.png", "does not exist"),
    (42, "path, a PIL image"),
])
def test_bad_images(small_pipe, image, words):
    with pytest.raises(UserInputError, match=words):
        small_pipe.session(image)


@pytest.mark.parametrize("pcm, rate, words", [
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.array([0.0, np.nan], np.float32), 16000, "NaN"),
    (np.zeros(100, np.float32), 4000, "between"),
    (np.full(100, 300.0, np.float32), 16000, "int16"),
    (np.zeros((3, 3, 3), np.float32), 16000, "1-D"),
])
def test_bad_audio_pushes(small_pipe, pcm, rate, words):
    s = small_pipe.session(REF)
    with pytest.raises(UserInputError, match=words):
        s.push_talk_audio(pcm, rate)
    with pytest.raises(UserInputError, match=words):
        s.push_listen_audio(pcm, rate)


def test_audio_formats_accepted(small_pipe, speechlike):
    s = small_pipe.session(REF)
    s.push_talk_audio((speechlike[:4000] * 32767).astype(np.int16), 8000)               # int16, 8 kHz
    s.push_talk_audio(np.stack([speechlike[:4800]] * 2, axis=1), 48000)                  # stereo 48 kHz
    s.push_talk_audio((speechlike[:2000] * 127 + 128).astype(np.uint8), 22050)           # 8-bit
    s.push_listen_audio(np.zeros(16000, np.float32), 16000)                              # silence
    c1, c2 = s.step(), s.step()
    assert c1.state == c2.state == "talking"
    assert c1.talk_samples + c2.talk_samples == 8000 + 1600 + 1452


def test_import_stays_cheap():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import sys, streamavatar; print('torch' in sys.modules)"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", (r.stdout, r.stderr)
    import streamavatar
    from streamavatar.streaming.pipeline import load

    assert streamavatar.load is load


def test_a_closed_session_refuses_work(small_pipe):
    from streamavatar.errors import SessionClosedError

    sess = small_pipe.session(np.full((64, 64, 3), 120, np.uint8))
    sess.step()
    sess.close()
    sess.close()  # idempotent
    calls = [lambda: sess.step(), lambda: sess.submit(), lambda: sess.collect(), lambda: list(sess.run(1)),
             lambda: sess.push_talk_audio(np.zeros(160, np.float32), 16000),
             lambda: sess.push_listen_audio(np.zeros(160, np.float32), 16000), lambda: sess.interrupt(),
             lambda: sess.skip_talk_audio(10), lambda: sess.clear_listen_audio()]
    for call in calls:
        with pytest.raises(SessionClosedError, match="closed; start a new one"):
            call()


def test_audio_pushed_from_another_thread_while_stepping_is_consumed_in_order(small_pipe, speechlike):
    """The server pushes on the event loop's thread while a step runs on a worker thread."""
    import threading

    s = small_pipe.session(REF)
    audio = speechlike[:40 * 640]
    pushed = threading.Event()

    def pusher():
        for k in range(40):
            s.push_talk_audio(audio[640 * k: 640 * (k + 1)], 16000)
        pushed.set()

    t = threading.Thread(target=pusher)
    t.start()
    chunks = [s.step() for _ in range(2)]
    t.join()
    chunks.append(s.step())
    assert pushed.is_set() and s.talk_index == sum(c.talk_samples for c in chunks) and s.talk_end == audio.size
    rest = s._audio.talk.queue.peek(audio.size)
    got = np.concatenate([c.audio[:c.talk_samples] for c in chunks] + [rest])
    np.testing.assert_array_equal(got, audio)  # nothing lost, nothing repeated, in order

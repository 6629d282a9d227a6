"""A pipecat frame processor that puts a streamavatar session inside a pipecat pipeline (optional extra).

Place it after the TTS service and before the output transport (with ``video_out_framerate=25``). It takes
``TTSStartedFrame`` / ``TTSAudioRawFrame`` / ``TTSStoppedFrame`` (the agent's voice), ``InterruptionFrame``
(barge-in) and ``InputAudioRawFrame`` (the user's voice, which drives listening), and emits one
``OutputImageRawFrame`` per video frame plus the agent speech re-timed to those frames as
``SpeechOutputAudioRawFrame`` (the TTS audio itself is not passed on: it comes back in step with the video).
Requires ``pip install pipecat-ai`` (it does not need torchvision).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import numpy as np

try:
    from pipecat.frames.frames import (
        CancelFrame,
        EndFrame,
        Frame,
        InputAudioRawFrame,
        InterruptionFrame,
        OutputImageRawFrame,
        SpeechOutputAudioRawFrame,
        StartFrame,
        TTSAudioRawFrame,
        TTSStartedFrame,
        TTSStoppedFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
except ImportError as exc:  # optional extra
    raise ImportError("streamavatar.serve.pipecat_service needs pipecat: pip install pipecat-ai") from exc

from streamavatar.serve.audio_in import StreamResampler
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.generator import AvatarPipeline
from streamavatar.serve.media_clock import OutputFrame
from streamavatar.serve.sessions import SessionRuntime, open_session
from streamavatar.serve.ws_protocol import ProtocolError

_log = logging.getLogger("streamavatar.serve")


def _refused_is_logged(call, *args) -> None:
    """Run a session input call; a refusal at a limit (``queue_full``: the TTS is far ahead of playout) is logged
    and counted at /metrics instead of breaking the pipeline."""
    try:
        call(*args)
    except ProtocolError as exc:
        _log.warning("pipecat avatar: %s", exc.message)


def _mono_int16(frame) -> np.ndarray:
    pcm = np.frombuffer(frame.audio, dtype="<i2")
    if frame.num_channels > 1:
        pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    return pcm.astype(np.int16)


class StreamAvatarVideoService(FrameProcessor):
    """One avatar session driven by a pipecat pipeline's audio."""

    def __init__(self, pipeline: AvatarPipeline, reference_image: np.ndarray, config: ServeConfig | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._avatar = pipeline
        self._reference = np.ascontiguousarray(reference_image, dtype=np.uint8)
        self._config = config or ServeConfig(model=pipeline.name, log_interval_s=0)
        self._runtime: SessionRuntime | None = None
        self._out: deque[OutputFrame] = deque(maxlen=100)
        self._ready = asyncio.Event()
        self._pusher: asyncio.Task | None = None
        self._resamplers: dict[tuple[str, int], StreamResampler] = {}

    # --- the session's sink: called once per video frame by the slot loop -----------------------------------
    def deliver(self, slot: int, frame: OutputFrame) -> None:
        self._out.append(frame)
        self._ready.set()

    async def _push_output(self) -> None:
        h, w = self._avatar.frame_size
        rate = self._avatar.sample_rate
        while True:
            if not self._out:
                self._ready.clear()
                await self._ready.wait()
                continue
            frame = self._out.popleft()
            await self.push_frame(OutputImageRawFrame(image=frame.image.tobytes(), size=(w, h), format="RGB"))
            if frame.talk_samples:
                await self.push_frame(SpeechOutputAudioRawFrame(audio=frame.audio.tobytes(), sample_rate=rate,
                                                                num_channels=1))

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        if self._runtime is not None:
            return
        session = await asyncio.to_thread(open_session, self._avatar, self._reference, self._config)
        self._runtime = SessionRuntime("pipecat", session, self._avatar.frame_size, self._avatar.sample_rate,
                                       self._config)
        self._runtime.add_sink(self)
        await self._runtime.start()
        self._pusher = self.create_task(self._push_output())

    async def _stop(self) -> None:
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None
        if self._pusher is not None:
            await self.cancel_task(self._pusher)
            self._pusher = None

    def _resampled(self, stream: str, frame) -> np.ndarray:
        key = (stream, frame.sample_rate)
        if key not in self._resamplers:
            self._resamplers = {k: v for k, v in self._resamplers.items() if k[0] != stream}
            self._resamplers[key] = StreamResampler(frame.sample_rate, self._avatar.sample_rate)
        return self._resamplers[key].push(_mono_int16(frame))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Route audio into the session; pass everything else on."""
        await super().process_frame(frame, direction)
        rt = self._runtime
        if isinstance(frame, StartFrame):
            await self._start()
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop()
        elif rt is not None and isinstance(frame, TTSAudioRawFrame):
            _refused_is_logged(rt.push_talk, self._resampled("talk", frame))
            return  # comes back re-timed as SpeechOutputAudioRawFrame
        elif rt is not None and isinstance(frame, TTSStartedFrame):
            _refused_is_logged(rt.speak_start)
        elif rt is not None and isinstance(frame, TTSStoppedFrame):
            for (stream, _), resampler in self._resamplers.items():
                if stream == "talk":
                    rest = resampler.flush()
                    if rest.size:
                        _refused_is_logged(rt.push_talk, rest)
            rt.speak_end()
        elif rt is not None and isinstance(frame, InterruptionFrame):
            rt.interrupt()
            for queued in self._out:  # frames waiting here have not reached the transport yet
                queued.mute()
        elif rt is not None and isinstance(frame, InputAudioRawFrame):
            rt.push_listen(self._resampled("listen", frame))
        await self.push_frame(frame, direction)

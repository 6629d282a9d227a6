"""WebRTC (aiortc): per-session offer/answer, the avatar's video and voice tracks, the user's microphone in.

The tracks do no pacing of their own: the session's slot loop delivers each frame and its audio to both
tracks at the same moment (audio waits for video by construction), and aiortc encodes them in its executor.
A new offer for a session replaces its previous peer connection (page reload, network change): the session,
its state and its frame counter carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender

from streamavatar.serve.audio_in import frame_to_mono_int16
from streamavatar.serve.media_clock import OutputFrame
from streamavatar.serve.sessions import SessionRuntime, _put_dropping
from streamavatar.serve.ws_protocol import ProtocolError

log = logging.getLogger("streamavatar.serve")
TRACK_QUEUE_FRAMES = 50
AUDIO_PACKETS_PER_FRAME = 2  # 20 ms audio frames per 40 ms video frame at 25 fps


def restrict_ice_addresses(addresses: tuple[str, ...]) -> None:
    """Gather ICE host candidates only on ``addresses`` (process-wide aioice setting).

    aioice otherwise skips loopback and offers every interface; the server is meant to stay on the addresses
    it is configured for (127.0.0.1 by default).
    """
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [a for a in chosen if (":" in a and use_ipv6)
                                                                or (":" not in a and use_ipv4)]


class SessionVideoTrack(MediaStreamTrack):
    """The avatar's video: one frame per slot, timestamped on the session media clock."""

    kind = "video"

    def __init__(self, runtime: SessionRuntime) -> None:
        super().__init__()
        self._runtime = runtime
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=TRACK_QUEUE_FRAMES)
        self.dropped = 0

    def deliver(self, slot: int, frame: OutputFrame) -> None:
        if _put_dropping(self._queue, (slot, frame.image)):
            self.dropped += 1

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        slot, image = await self._queue.get()
        vf = av.VideoFrame.from_ndarray(image, format="rgb24")
        vf.pts, vf.time_base = self._runtime.clock.video_pts(slot)
        return vf

    def stop(self) -> None:
        self._runtime.remove_sink(self)
        super().stop()


class SessionAudioTrack(MediaStreamTrack):
    """The avatar's voice: exactly the agent audio of each sent frame (silence when it does not talk)."""

    kind = "audio"

    def __init__(self, runtime: SessionRuntime) -> None:
        super().__init__()
        self._runtime = runtime
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=TRACK_QUEUE_FRAMES * AUDIO_PACKETS_PER_FRAME)
        self.dropped = 0

    def deliver(self, slot: int, frame: OutputFrame) -> None:
        n = frame.audio.size // AUDIO_PACKETS_PER_FRAME
        for k in range(AUDIO_PACKETS_PER_FRAME):
            if _put_dropping(self._queue, (slot, k * n, frame.audio[k * n:(k + 1) * n])):
                self.dropped += 1

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        slot, offset, pcm = await self._queue.get()
        af = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        af.sample_rate = self._runtime.sample_rate
        af.pts, af.time_base = self._runtime.clock.audio_pts(slot, offset)
        return af

    def stop(self) -> None:
        self._runtime.remove_sink(self)
        super().stop()


def validate_offer(body: Any, max_bytes: int) -> RTCSessionDescription:
    """The client's offer, or ProtocolError saying what is wrong with it."""
    if not isinstance(body, dict):
        raise ProtocolError("bad_offer", "the offer must be a JSON object {\"sdp\": ..., \"type\": \"offer\"}")
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise ProtocolError("bad_offer", f"type must be 'offer', got {str(kind)[:20]!r}")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ProtocolError("bad_offer", "sdp must be a session description starting with 'v=0'")
    if len(sdp.encode()) > max_bytes:
        raise ProtocolError("bad_offer", f"the SDP offer is {len(sdp.encode())} bytes, more than "
                            f"max_sdp_bytes={max_bytes}")
    return RTCSessionDescription(sdp=sdp, type="offer")


def _prefer_codec(transceiver: Any, mime: str) -> None:
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    preferred = [c for c in codecs if c.mimeType.lower() == mime.lower()]
    if preferred:
        transceiver.setCodecPreferences(preferred + [c for c in codecs if c not in preferred])


async def answer_offer(runtime: SessionRuntime, offer: RTCSessionDescription,
                       video_codec: str) -> RTCSessionDescription:
    """Make a peer connection for ``runtime`` from the client's offer and return the answer."""
    for old in list(runtime.peers):
        runtime.peers.discard(old)
        with contextlib.suppress(Exception):
            await old.close()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tracks: list[MediaStreamTrack] = []
    mic_tasks: list[asyncio.Task] = []

    async def cleanup() -> None:
        for t in tracks:
            t.stop()
        for task in mic_tasks:
            task.cancel()
        runtime.peers.discard(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            mic_tasks.append(asyncio.ensure_future(_consume_mic(track, runtime)))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        log.info("session %s: peer %s", runtime.id, pc.connectionState)
        if pc.connectionState in ("failed", "closed"):
            await cleanup()
            with contextlib.suppress(Exception):
                await pc.close()
        runtime.touch()

    try:
        await pc.setRemoteDescription(offer)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                track: MediaStreamTrack = SessionVideoTrack(runtime)
                _prefer_codec(transceiver, f"video/{'H264' if video_codec == 'h264' else 'VP8'}")
            else:
                track = SessionAudioTrack(runtime)
            transceiver.sender.replaceTrack(track)
            transceiver.direction = "sendrecv"  # the answer narrows this to what the offer allows
            tracks.append(track)
        if not tracks:
            raise ProtocolError("bad_offer", "the offer has no audio or video media section")
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except ProtocolError:
        await cleanup()
        await pc.close()
        raise
    except Exception as exc:  # aiortc raises many types on malformed SDP
        await cleanup()
        with contextlib.suppress(Exception):
            await pc.close()
        raise ProtocolError("bad_offer", f"could not use the SDP offer: {type(exc).__name__}: {str(exc)[:200]}") \
            from None
    for t in tracks:
        runtime.add_sink(t)
    runtime.peers.add(pc)
    runtime.touch()
    return pc.localDescription


async def _consume_mic(track: MediaStreamTrack, runtime: SessionRuntime) -> None:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=runtime.sample_rate)
    while True:
        try:
            frame = await track.recv()
        except (MediaStreamError, asyncio.CancelledError):
            return
        runtime.push_listen(frame_to_mono_int16(frame, resampler))

"""Shared helpers of the server tests: an in-process server on 127.0.0.1, a Python WebRTC client, recorders."""

from __future__ import annotations

import asyncio
import fractions
import io
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import av
import httpx
import numpy as np
import uvicorn
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from PIL import Image

from streamavatar.serve import frame_code
from streamavatar.serve.app import create_app
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.fake_generator import FakeAvatarPipeline

API_KEY = "test-key-123456"


def fake_config(**kw) -> ServeConfig:
    base = dict(model="fake", fake_size=64, api_key=API_KEY, max_sessions=2, metrics_interval_s=0.5,
                log_interval_s=0, video_codec="vp8")
    base.update(kw)
    return ServeConfig(**base)


def png_bytes(color: tuple[int, int, int], size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def ramp(start: int, n: int) -> np.ndarray:
    """Agent audio whose sample k carries (k mod 2**15): the index survives the whole path as PCM16."""
    return ((np.arange(start, start + n)) % 32768).astype(np.int16)


@asynccontextmanager
async def running_server(config: ServeConfig, pipeline=None, token_clock=None):
    kw = {} if token_clock is None else {"token_clock": token_clock}
    app = create_app(config, pipeline=pipeline or FakeAvatarPipeline(config.fake_size, config.fake_size), **kw)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                           ws_max_size=config.ws_max_message_bytes + 1024))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


async def create_session(client: httpx.AsyncClient, base: str, color=(200, 30, 30)) -> dict:
    r = await client.post(f"http://{base}/v1/sessions", content=png_bytes(color),
                          headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    return r.json()


class Noise(MediaStreamTrack):
    """A fake microphone: 20 ms frames of loud noise at 48 kHz, paced in real time."""

    kind = "audio"

    def __init__(self, amplitude: float = 0.3) -> None:
        super().__init__()
        self._pts = 0
        self._rng = np.random.default_rng(0)
        self._amplitude = amplitude
        self._start = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._pts / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = (self._rng.standard_normal(960) * self._amplitude * 32767).clip(-32767, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


@dataclass
class RtcClient:
    """A Python WebRTC client of one session that records decoded frame indices."""

    pc: RTCPeerConnection
    frames: list = field(default_factory=list)
    tasks: list = field(default_factory=list)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


async def connect_rtc(client: httpx.AsyncClient, base: str, session: dict, mic: MediaStreamTrack | None = None,
                      token: str | None = None) -> RtcClient:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    rc = RtcClient(pc)
    pc.addTransceiver("video", direction="recvonly")
    if mic is not None:
        pc.addTrack(mic)
    else:
        pc.addTransceiver("audio", direction="recvonly")

    @pc.on("track")
    def on_track(track):
        if track.kind == "video":
            rc.tasks.append(asyncio.ensure_future(_read_video(track, rc.frames)))

    await pc.setLocalDescription(await pc.createOffer())
    r = await client.post(f"http://{base}/v1/sessions/{session['session_id']}/offer",
                          json={"sdp": pc.localDescription.sdp, "type": "offer"},
                          headers={"Authorization": f"Bearer {token or session['token']}"})
    assert r.status_code == 200, r.text
    await pc.setRemoteDescription(RTCSessionDescription(**r.json()))
    return rc


async def _read_video(track, out: list) -> None:
    while True:
        try:
            frame = await track.recv()
        except Exception:
            return
        img = frame.to_ndarray(format="rgb24")
        out.append((frame_code.read_code(img, frame_code.ROW_FRAME),
                    frame_code.read_code(img, frame_code.ROW_REFERENCE)))


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.02):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("condition not met in time")


async def next_event(ws, kind: str, timeout: float = 10.0) -> dict:
    async def _get():
        while True:
            e = json.loads(await ws.recv())
            if e["type"] == kind:
                return e
    return await asyncio.wait_for(_get(), timeout)


def arrays_held(obj, skip: tuple = (), _seen: set | None = None, _path: str = "") -> list[str]:
    """Paths of the non-empty numpy arrays reachable from ``obj`` through attributes and containers, not
    entering the objects in ``skip`` (to check that the server keeps no copy of the audio it was given)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or any(obj is s for s in skip) or isinstance(obj, (str, bytes, int, float, type(None))):
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [_path] if obj.size else []
    if isinstance(obj, dict):
        items = [(f"{_path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
        items = [(f"{_path}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("streamavatar"):
        items = [(f"{_path}.{k}", v) for k, v in vars(obj).items()]
    else:
        return []
    return [p for key, v in items for p in arrays_held(v, skip, seen, key)]

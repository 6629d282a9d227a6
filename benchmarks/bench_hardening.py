"""Hardening benchmark: memory a client controls, and frame slots kept while uploads are decoded.

Starts ``streamavatar serve --model fake`` as a subprocess on 127.0.0.1 (a free port; loopback only) and
measures, from outside, the server process's RSS (psutil):

1. after ``--uploads`` (100) uploads of distinct ``--image-side``² (4096²) PNGs to ``POST /v1/avatars``;
2. after ``--audio-mb`` (1024) MB of agent audio offered to one session over its WebSocket, in ~1 MiB messages
   (a client refused more than 100 times is disconnected, 4408; the script reconnects and goes on offering);
3. frame slots of one live session during ``--live-uploads`` (20) uploads: ``late_slots`` (the event loop sent a
   slot more than a frame late) and ``repeated_frames`` (generation was late), from ``/metrics``.

``--code DIR`` runs the server from another checkout (e.g. the code before the hardening, for a before/after).

    PYTHONPATH=. python benchmarks/bench_hardening.py [--uploads 100] [--audio-mb 1024] [--live-uploads 20] \
        [--size 256] [--code DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import psutil
import websockets
from PIL import Image

API_KEY = "bench-hardening-key"
KEY = {"Authorization": f"Bearer {API_KEY}"}


def big_png(seed: int, side: int) -> bytes:
    """A distinct, compressible ``side``² PNG (a small upload that costs a full decode)."""
    img = np.zeros((side, side, 3), np.uint8)
    img[:, :, 0] = seed % 251
    img[(seed * 37) % side, :, 1] = 255
    img[:, (seed * 11) % side, 2] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(code: str, size: int, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": code, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "streamavatar", "serve", "--model", "fake", "--fake-size", str(size), "--host",
           "127.0.0.1", "--port", str(port), "--api-key", API_KEY, "--no-warmup", "--log-interval-s", "0",
           "--idle-timeout-s", "3600", "--max-sessions", "4"]
    # cwd=code: "python -m" puts the working directory first on sys.path, so it must be the checkout under test
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


def rss_mb(proc: subprocess.Popen) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 2**20


def session_counter(metrics: str, name: str, sid: str) -> float:
    m = re.search(rf'^streamavatar_session_{name}{{session="{sid}"}} (\S+)$', metrics, re.M)
    return float(m.group(1)) if m else float("nan")


async def snapshot(base: str, session: dict) -> dict:
    """The session's next ``metrics`` event (late_slots, repeated_frames, frames_emitted; any code version)."""
    url = f"ws://{base}/v1/sessions/{session['session_id']}/ws?token={session['token']}"
    async with websockets.connect(url) as ws:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if event["type"] == "metrics":
                return event["metrics"]


async def _drain(ws) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await ws.recv()


async def offer_audio(base: str, session: dict, total_mb: int) -> dict:
    """Offer ``total_mb`` MB of agent audio in messages just under 1 MiB; reconnect when disconnected."""
    payload = (np.ones((2**20 - 2) // 2, np.int16) * 1000).tobytes()
    message = b"T" + payload
    url = f"ws://{base}/v1/sessions/{session['session_id']}/ws?token={session['token']}"
    sent, connections, close_codes = 0, 0, {}
    target = total_mb * 10**6
    while sent < target:
        connections += 1
        try:
            async with websockets.connect(url, max_size=None) as ws:
                reader = asyncio.create_task(_drain(ws))  # unread events would stop the client reading pongs
                await ws.send(json.dumps({"type": "speak_start"}))
                while sent < target:
                    await ws.send(message)
                    # A pong proves the server read the message (a socket it has closed would swallow sends).
                    await asyncio.wait_for(await ws.ping(), 30)
                    sent += len(payload)
                reader.cancel()
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            close_codes[code] = close_codes.get(code, 0) + 1
    return {"offered_mb": round(sent / 10**6, 1), "connections": connections, "close_codes": close_codes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uploads", type=int, default=100)
    ap.add_argument("--image-side", type=int, default=4096)
    ap.add_argument("--audio-mb", type=int, default=1024)
    ap.add_argument("--live-uploads", type=int, default=20)
    ap.add_argument("--baseline-s", type=float, default=10.0,
                    help="seconds the live session runs without uploads first (baseline late slots)")
    ap.add_argument("--size", type=int, default=256, help="frame side of the fake generator (default 256)")
    ap.add_argument("--code", default=".", help="checkout to run the server from (PYTHONPATH of the server)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    port = free_port()
    base = f"127.0.0.1:{port}"
    out: dict = {"code": os.path.abspath(args.code), "fake_size": args.size, "image_side": args.image_side}
    t0 = time.monotonic()
    images = [big_png(k, args.image_side) for k in range(max(args.uploads, args.live_uploads + 2))]
    out["upload_bytes_mean"] = int(np.mean([len(b) for b in images]))
    proc = start_server(args.code, args.size, port)
    try:
        with httpx.Client(timeout=120) as c:
            out["rss_start_mb"] = round(rss_mb(proc), 1)
            # 1. uploads
            peak = out["rss_start_mb"]
            for data in images[:args.uploads]:
                r = c.post(f"http://{base}/v1/avatars", content=data, headers={**KEY, "Content-Type": "image/png"})
                assert r.status_code == 200, r.text
                peak = max(peak, rss_mb(proc))
            out["rss_after_uploads_mb"] = round(rss_mb(proc), 1)
            out["rss_peak_during_uploads_mb"] = round(peak, 1)
            cached = re.search(r"^streamavatar_avatars_cached (\S+)$", c.get(f"http://{base}/metrics").text, re.M)
            out["avatars_cached"] = float(cached.group(1)) if cached else None
            # 2. agent audio
            s = c.post(f"http://{base}/v1/sessions", content=images[0], headers={**KEY, "Content-Type": "image/png"})
            assert s.status_code == 201, s.text
            session = s.json()
            t_audio = time.monotonic()
            out["audio"] = asyncio.run(offer_audio(base, session, args.audio_mb))
            out["audio"]["wall_s"] = round(time.monotonic() - t_audio, 1)
            out["rss_after_audio_mb"] = round(rss_mb(proc), 1)
            metrics = c.get(f"http://{base}/metrics").text
            sid = session["session_id"]
            out["audio"]["queued_talk_s"] = session_counter(metrics, "queue_talk_samples", sid) / 16000
            out["audio"]["refused_s"] = session_counter(metrics, "talk_samples_refused_total", sid) / 16000
            out["audio"]["received_by_server_mb"] = round(asyncio.run(snapshot(base, session))["talk_samples_in"]
                                                          * 2 / 10**6, 1)
            c.delete(f"http://{base}/v1/sessions/{sid}", headers=KEY)
            # 3. a live session during uploads
            s = c.post(f"http://{base}/v1/sessions", content=images[1], headers={**KEY, "Content-Type": "image/png"})
            live = s.json()
            time.sleep(2.0)
            idle0 = asyncio.run(snapshot(base, live))
            t_idle = time.monotonic()
            time.sleep(args.baseline_s)  # the same session with no uploads: what the machine's load alone costs
            idle1 = asyncio.run(snapshot(base, live))
            out["baseline"] = {"wall_s": round(time.monotonic() - t_idle, 2),
                               **{k: idle1[k] - idle0[k] for k in ("frames_emitted", "late_slots", "repeated_frames")}}
            before = asyncio.run(snapshot(base, live))
            t_live = time.monotonic()
            for data in images[2:2 + args.live_uploads]:
                r = c.post(f"http://{base}/v1/avatars", content=data, headers={**KEY, "Content-Type": "image/png"})
                assert r.status_code == 200, r.text
            live_s = time.monotonic() - t_live
            after = asyncio.run(snapshot(base, live))
            out["live"] = {"uploads": args.live_uploads, "wall_s": round(live_s, 2),
                           **{k: after[k] - before[k] for k in ("frames_emitted", "late_slots", "repeated_frames")}}
            out["rss_end_mb"] = round(rss_mb(proc), 1)
    finally:
        proc.terminate()
        proc.wait(30)
    out["load_average"] = os.getloadavg()
    out["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

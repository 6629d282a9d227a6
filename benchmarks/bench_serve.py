"""Serving benchmark: time-to-first-frame, interrupt latency, A/V offset over a simulated 10 minutes, and
per-session frame rate with 1 and 2 concurrent sessions over real WebRTC on 127.0.0.1.

NOTE: the real StreamAvatar model (issue #8) does not exist yet, so every number here is measured with the
deterministic FAKE generator (``--model fake``): it measures the server (scheduling, WebRTC encoding and
transport, protocol), not the model. Rerun with the real model once it lands.

    PYTHONPATH=. python benchmarks/bench_serve.py [--size 256] [--seconds 6] [--utterances 6] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import httpx
import numpy as np
import websockets
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.simulation import av_offsets, sim_config, start_sim_session
from streamavatar.serve.virtual_time import run_virtual
from streamavatar.serve.ws_protocol import encode_audio

sys.path.insert(0, ".")
from tests.serve.helpers import API_KEY, connect_rtc, create_session, next_event, running_server  # noqa: E402


def _config(size: int, max_sessions: int = 2) -> ServeConfig:
    return ServeConfig(model="fake", fake_size=size, api_key=API_KEY, max_sessions=max_sessions,
                       metrics_interval_s=0.5, log_interval_s=0)


async def _latencies(size: int, utterances: int, bar: tqdm) -> dict:
    """Per utterance: server TTFF (first agent sample in -> first talking frame out) and client-observed TTFF;
    then an interrupt 1 s into a long utterance: server latency and client round trip to interrupt_done."""
    ttff_server, ttff_client, int_server, int_client = [], [], [], []
    async with running_server(_config(size)) as (base, _app):
        async with httpx.AsyncClient() as c:
            s = await create_session(c, base)
            rtc = await connect_rtc(c, base, s)
            url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
            async with websockets.connect(url) as ws:
                await asyncio.sleep(1.0)
                tone = (8000 * np.sin(np.arange(16000 * 6) / 8)).astype(np.int16)
                for _ in range(utterances):
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await ws.send(encode_audio("talk", tone[:16000]))
                    await ws.send(json.dumps({"type": "speak_end"}))
                    started = await next_event(ws, "speak_started")
                    ttff_client.append(time.perf_counter() - t0)
                    ttff_server.append(started["ttff_s"])
                    await next_event(ws, "speak_ended")
                    await asyncio.sleep(0.37)  # vary the phase against the chunk clock
                    bar.update(1)
                for _ in range(utterances):
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await ws.send(encode_audio("talk", tone))
                    await ws.send(json.dumps({"type": "speak_end"}))
                    await next_event(ws, "speak_started")
                    await asyncio.sleep(1.0 + 0.07 * len(int_client))
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"type": "interrupt"}))
                    done = await next_event(ws, "interrupt_done")
                    int_client.append(time.perf_counter() - t0)
                    int_server.append(done["latency_s"])
                    await asyncio.sleep(0.5)
                    bar.update(1)
            await rtc.close()

    def stats(xs):
        return {"mean_ms": round(1000 * statistics.mean(xs), 1), "max_ms": round(1000 * max(xs), 1),
                "min_ms": round(1000 * min(xs), 1), "n": len(xs)}

    return {"ttff_server": stats(ttff_server), "ttff_client": stats(ttff_client),
            "interrupt_server": stats(int_server), "interrupt_client": stats(int_client),
            "interrupt_bound_ms": round(1000 * (K.CHUNK_SECONDS * 2 + 1 / K.VIDEO_FPS), 1)}


async def _simulated_av(seconds: float) -> dict:
    sim = await start_sim_session(config=sim_config())
    rng = np.random.default_rng(0)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        sim.say(float(rng.uniform(0.3, 5.0)), pieces=int(rng.integers(1, 6)))
        await asyncio.sleep(float(rng.uniform(0.5, 8.0)))
    await sim.close()
    offsets, muted = av_offsets(sim.rec, sim.runtime.sample_rate)
    lag = np.array([v.sent_at - v.pts_s for v in sim.rec.video])
    return {"simulated_s": seconds, "frames": len(sim.rec.video), "talking_frames_checked": int(offsets.size),
            "max_abs_av_offset_ms": round(1000 * float(offsets.max()), 3),
            "drift_ms_first_vs_last_minute": round(1000 * float(lag[-1500:].mean() - lag[:1500].mean()), 3)}


async def _fps(size: int, sessions: int, seconds: float) -> dict:
    async with running_server(_config(size, max_sessions=sessions)) as (base, app):
        async with httpx.AsyncClient() as c:
            made = [await create_session(c, base, color=(40 * i, 80, 200)) for i in range(sessions)]
            clients = [await connect_rtc(c, base, s) for s in made]
            await asyncio.sleep(2.0)  # connect and settle
            counts = [len(cl.frames) for cl in clients]
            t0 = time.perf_counter()
            await asyncio.sleep(seconds)
            dt = time.perf_counter() - t0
            received = [(len(cl.frames) - n) / dt for cl, n in zip(clients, counts, strict=True)]
            snaps = [app.state.manager.get(s["session_id"]).metrics_snapshot() for s in made]
            for cl in clients:
                await cl.close()
    return {"sessions": sessions, "received_fps": [round(x, 2) for x in received],
            "server_fps": [s["fps"] for s in snaps], "rtf": [s["rtf"] for s in snaps],
            "repeated_frames": [s["repeated_frames"] for s in snaps]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="fake frame side in pixels (default 256)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds to count frames per fps run")
    p.add_argument("--utterances", type=int, default=6, help="utterances (and interrupts) to time")
    p.add_argument("--simulated-seconds", type=float, default=600.0, help="simulated session length for A/V")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    result = {"model": "fake (deterministic test generator; the real model does not exist yet)",
              "video": f"{args.size}x{args.size}@{K.VIDEO_FPS}", "codec": "h264 (aiortc/libx264)"}
    with tqdm(total=2 * args.utterances, desc="latency", file=sys.stderr) as bar:
        result["latency"] = asyncio.run(_latencies(args.size, args.utterances, bar))
    t0 = time.perf_counter()
    result["av_sync"] = run_virtual(_simulated_av(args.simulated_seconds))
    result["av_sync"]["wall_s"] = round(time.perf_counter() - t0, 2)
    result["fps"] = [asyncio.run(_fps(args.size, n, args.seconds)) for n in (1, 2)]
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

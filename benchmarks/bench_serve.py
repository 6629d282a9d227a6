"""Serving benchmark: time-to-first-frame, interrupt latency, A/V offset over a simulated session, and
per-session frame rate with 1 and 2 concurrent sessions over real WebRTC on 127.0.0.1.

NOTE: ``--model fake`` (the default) is the deterministic FAKE generator: it measures the server
(scheduling, WebRTC encoding and transport, protocol), not a model. ``--model default`` (the model bundled
with the package) or ``--model DIR`` (a model folder) runs the same measurements with the real streaming
engine (``streamavatar.load``, docs/engine.md), on one model shared by the sessions as ``streamavatar serve``
does. The A/V part runs on a simulated clock: the real model's compute takes no simulated time there, and
its frames get the fake's frame codes stamped on after generation (``CodeStampingPipeline``), so it checks
that every frame leaves with exactly its chunk's audio; with a real model it defaults to 120 simulated
seconds (``--simulated-seconds``), because every simulated chunk costs real compute.

    PYTHONPATH=. python benchmarks/bench_serve.py [--model fake|default|DIR] [--size 256] [--seconds 6] \
        [--utterances 6] [--simulated-seconds S] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time

import httpx
import numpy as np
import websockets
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from streamavatar.serve.generator import AvatarPipeline
from streamavatar.serve.simulation import CodeStampingPipeline, av_offsets, sim_config, start_sim_session
from streamavatar.serve.virtual_time import run_virtual
from streamavatar.serve.ws_protocol import encode_audio

sys.path.insert(0, ".")
from tests.serve.helpers import API_KEY, connect_rtc, create_session, next_event, running_server  # noqa: E402

#: Counters of the behind-real-time policy and the queues (docs/server.md), reported after each part.
POLICY_COUNTERS = ("rtf", "fps", "repeated_frames", "dropped_talk_frames", "talk_underrun_chunks", "late_slots",
                   "interrupt_dropped_frames", "chunks_generated")
EVENT_TIMEOUT_S = 60.0


def _config(model: str, size: int, max_sessions: int = 2) -> ServeConfig:
    return ServeConfig(model=model, fake_size=size, api_key=API_KEY, max_sessions=max_sessions,
                       metrics_interval_s=0.5, log_interval_s=0)


async def _wait_ready(client: httpx.AsyncClient, base: str, timeout_s: float = 120.0) -> None:
    """Wait for /readyz (the server warms the model up with one chunk first)."""
    for _ in range(int(timeout_s / 0.1)):
        if (await client.get(f"http://{base}/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server was not ready after {timeout_s} s")


def _counters(snapshot: dict) -> dict:
    return {k: snapshot.get(k) for k in POLICY_COUNTERS}


async def _latencies(pipe: AvatarPipeline, model: str, size: int, utterances: int, bar: tqdm) -> dict:
    """Per utterance: server TTFF (first agent sample in -> first talking frame out) and client-observed TTFF;
    then an interrupt 1 s into a long utterance: server latency and client round trip to interrupt_done."""
    ttff_server, ttff_client, int_server, int_client = [], [], [], []
    async with running_server(_config(model, size), pipeline=pipe) as (base, app):
        async with httpx.AsyncClient() as c:
            await _wait_ready(c, base)
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
                    started = await next_event(ws, "speak_started", EVENT_TIMEOUT_S)
                    ttff_client.append(time.perf_counter() - t0)
                    ttff_server.append(started["ttff_s"])
                    await next_event(ws, "speak_ended", EVENT_TIMEOUT_S)
                    await asyncio.sleep(0.37)  # vary the phase against the chunk clock
                    bar.update(1)
                for _ in range(utterances):
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await ws.send(encode_audio("talk", tone))
                    await ws.send(json.dumps({"type": "speak_end"}))
                    await next_event(ws, "speak_started", EVENT_TIMEOUT_S)
                    await asyncio.sleep(1.0 + 0.07 * len(int_client))
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"type": "interrupt"}))
                    done = await next_event(ws, "interrupt_done", EVENT_TIMEOUT_S)
                    int_client.append(time.perf_counter() - t0)
                    int_server.append(done["latency_s"])
                    await asyncio.sleep(0.5)
                    bar.update(1)
            counters = _counters(app.state.manager.get(s["session_id"]).metrics_snapshot())
            await rtc.close()

    def stats(xs):
        return {"mean_ms": round(1000 * statistics.mean(xs), 1), "max_ms": round(1000 * max(xs), 1),
                "min_ms": round(1000 * min(xs), 1), "n": len(xs)}

    return {"ttff_server": stats(ttff_server), "ttff_client": stats(ttff_client),
            "interrupt_server": stats(int_server), "interrupt_client": stats(int_client),
            "interrupt_bound_ms": round(1000 * (K.CHUNK_SECONDS * 2 + 1 / K.VIDEO_FPS), 1),
            "session_counters": counters}


async def _simulated_av(pipe: AvatarPipeline | None, seconds: float) -> dict:
    if pipe is None:
        sim = await start_sim_session(config=sim_config())
    else:
        sim = await start_sim_session(size=pipe.frame_size[1], config=sim_config(),
                                      pipeline=CodeStampingPipeline(pipe))
    rng = np.random.default_rng(0)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        sim.say(float(rng.uniform(0.3, 5.0)), pieces=int(rng.integers(1, 6)))
        await asyncio.sleep(float(rng.uniform(0.5, 8.0)))
    await sim.close()
    offsets, muted = av_offsets(sim.rec, sim.runtime.sample_rate)
    lag = np.array([v.sent_at - v.pts_s for v in sim.rec.video])
    minute = min(1500, len(lag) // 2)
    return {"simulated_s": seconds, "frames": len(sim.rec.video), "talking_frames_checked": int(offsets.size),
            "silent_talking_frames": muted, "max_abs_av_offset_ms": round(1000 * float(offsets.max()), 3),
            "drift_ms_first_vs_last_minute": round(1000 * float(lag[-minute:].mean() - lag[:minute].mean()), 3),
            "session_counters": _counters(sim.runtime.metrics_snapshot())}


async def _fps(pipe: AvatarPipeline, model: str, size: int, sessions: int, seconds: float) -> dict:
    async with running_server(_config(model, size, max_sessions=sessions), pipeline=pipe) as (base, app):
        async with httpx.AsyncClient() as c:
            await _wait_ready(c, base)
            made = [await create_session(c, base, color=(40 * i, 80, 200)) for i in range(sessions)]
            clients = [await connect_rtc(c, base, s) for s in made]
            await asyncio.sleep(2.0)  # connect and settle
            runtimes = [app.state.manager.get(s["session_id"]) for s in made]
            counts = [len(cl.frames) for cl in clients]
            generated = [rt.metrics.frames_generated for rt in runtimes]
            t0 = time.perf_counter()
            await asyncio.sleep(seconds)
            dt = time.perf_counter() - t0
            received = [(len(cl.frames) - n) / dt for cl, n in zip(clients, counts, strict=True)]
            # slots go out at 25 fps whatever happens; these are the model's new frames among them
            new = [(rt.metrics.frames_generated - g) / dt for rt, g in zip(runtimes, generated, strict=True)]
            snaps = [app.state.manager.get(s["session_id"]).metrics_snapshot() for s in made]
            for cl in clients:
                await cl.close()
    return {"sessions": sessions, "received_fps": [round(x, 2) for x in received],
            "generated_fps": [round(x, 2) for x in new],
            "server_fps": [s["fps"] for s in snaps], "rtf": [s["rtf"] for s in snaps],
            "repeated_frames": [s["repeated_frames"] for s in snaps],
            "session_counters": [_counters(s) for s in snaps]}


def _load(model: str, size: int) -> AvatarPipeline:
    if model == "fake":
        return FakeAvatarPipeline(size, size)
    import streamavatar

    return streamavatar.load(model)


class _LoadSampler:
    """Samples the 1-minute load average every few seconds in a thread (the machine is shared)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every_s)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        xs = self.samples
        return {"min": round(min(xs), 2), "mean": round(statistics.mean(xs), 2), "max": round(max(xs), 2),
                "samples": len(xs)}


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return sys.modules["torch"].get_num_threads()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fake", help="fake (default), default (the bundled model) or a model folder")
    p.add_argument("--size", type=int, default=256, help="fake frame side in pixels (default 256)")
    p.add_argument("--seconds", type=float, default=6.0, help="seconds to count frames per fps run")
    p.add_argument("--utterances", type=int, default=6, help="utterances (and interrupts) to time")
    p.add_argument("--simulated-seconds", type=float, default=None,
                   help="simulated session length for A/V (default 600 with the fake, 120 with a real model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    load = _LoadSampler()
    t_start = t0 = time.perf_counter()
    pipe = _load(args.model, args.size)
    h, w = pipe.frame_size
    simulated = args.simulated_seconds or (600.0 if args.model == "fake" else 120.0)
    label = "fake (deterministic test generator, not a model)" if args.model == "fake" else pipe.name
    result = {"model": label, "video": f"{w}x{h}@{K.VIDEO_FPS}", "codec": "h264 (aiortc/libx264)",
              "torch_threads": _torch_threads(), "load_s": round(time.perf_counter() - t0, 2),
              "lookahead_samples": getattr(pipe, "lookahead_samples", 0)}
    with tqdm(total=2 * args.utterances, desc="latency", file=sys.stderr) as bar:
        result["latency"] = asyncio.run(_latencies(pipe, args.model, w, args.utterances, bar))
    t0 = time.perf_counter()
    result["av_sync"] = run_virtual(_simulated_av(None if args.model == "fake" else pipe, simulated))
    result["av_sync"]["wall_s"] = round(time.perf_counter() - t0, 2)
    result["fps"] = [asyncio.run(_fps(pipe, args.model, w, n, args.seconds)) for n in (1, 2)]
    result["load_average_1min"] = load.stop()
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

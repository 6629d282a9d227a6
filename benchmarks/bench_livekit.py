"""LiveKit avatar benchmark, side by side with the built-in WebRTC server, in one run on this machine.

LiveKit part (in-process mode, no LiveKit server exists here): LiveKit's own ``AvatarRunner`` with its
``AVSynchronizer`` and native ``AudioSource`` / ``VideoSource`` publishes into a stand-in room
(``tests/integrations/standin_room.py``); the agent's voice enters through ``QueueAudioOutput`` as it does
in an agent. A frame counts as sent when the synchronizer hands it to the native ``VideoSource``
(``capture_frame``, patched here to record the time), the same point at which the server counts a frame as
sent. Measured, with the same utterances as ``bench_serve.py`` (a 1 s tone at 16 kHz; 6 s for interrupts):

* time to first frame: first agent audio frame in → first talking frame sent (6 utterances);
* interrupt latency: ``clear_buffer`` 1 s (+70 ms per try) into talking → first listening/idle frame sent;
* frames per second held: an idle session for ``--seconds``: frames sent per second, frames generated per
  second, repeated frames, RTF.

Server part: ``benchmarks/bench_serve.py --model <same> --seconds <same>`` in a subprocess right after, with
its A/V simulation shortened (``--simulated-seconds``), since only its latency and fps parts are compared.
The two alternate for ``--rounds`` rounds (the machine is shared: load changes between parts hit both), and
the 1-minute load average is recorded around each part.

    PYTHONPATH=. python benchmarks/bench_livekit.py [--model default] [--seconds 20] [--utterances 6] \
        [--rounds 2] [--no-server] [--out benchmarks/results_livekit.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, ".")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AvatarRunner, QueueAudioOutput, VideoGenerator  # noqa: E402

import streamavatar as sa  # noqa: E402
from streamavatar.integrations.livekit import StreamAvatarVideoGenerator  # noqa: E402
from streamavatar.serve.fake_generator import FakeAvatarPipeline  # noqa: E402
from streamavatar.streaming.default_assets import bundled_inputs  # noqa: E402
from tests.integrations.standin_room import StandInRoom  # noqa: E402

_sent: list[tuple[float, str]] = []
_states: dict[int, str] = {}
_orig_capture = rtc.VideoSource.capture_frame


def _capture(self, frame, *args, **kwargs):  # the moment a frame leaves the synchronizer for WebRTC
    _sent.append((time.perf_counter(), _states.get(id(frame), "?")))
    return _orig_capture(self, frame, *args, **kwargs)


rtc.VideoSource.capture_frame = _capture


class Tagger(VideoGenerator):
    """Passes the generator through, remembering each video frame's state for the capture hook."""

    def __init__(self, gen: StreamAvatarVideoGenerator) -> None:
        self.gen = gen

    async def push_audio(self, frame) -> None:
        await self.gen.push_audio(frame)

    async def clear_buffer(self) -> None:
        await self.gen.clear_buffer()

    def __aiter__(self):
        return self._items()

    async def _items(self):
        async for item in self.gen:
            if isinstance(item, rtc.VideoFrame):
                _states[id(item)] = self.gen.current_state
            yield item


def _frames(pcm: np.ndarray, rate: int = 16000, ms: int = 20) -> list[rtc.AudioFrame]:
    n = rate * ms // 1000
    return [rtc.AudioFrame(pcm[i:i + n].tobytes(), rate, 1, pcm[i:i + n].size) for i in range(0, pcm.size, n)]


async def _first_sent(after: float, states: tuple[str, ...], timeout: float = 60.0) -> float:
    t_end = time.perf_counter() + timeout
    while time.perf_counter() < t_end:
        for t, s in _sent:
            if t >= after and s in states:
                return t
        await asyncio.sleep(0.005)
    raise TimeoutError(f"no {states} frame within {timeout} s")


def _stats(xs: list[float]) -> dict:
    return {"mean_ms": round(1000 * statistics.mean(xs), 1), "min_ms": round(1000 * min(xs), 1),
            "max_ms": round(1000 * max(xs), 1), "n": len(xs)}


async def _livekit(pipe, image, utterances: int, seconds: float) -> dict:
    room = StandInRoom("agent-1")
    audio = QueueAudioOutput(sample_rate=16000)
    gen = StreamAvatarVideoGenerator(pipe, image, audio_sample_rate=16000)
    runner = AvatarRunner(room, audio_recv=audio, video_gen=Tagger(gen), options=gen.options)
    gen.attach_av_sync(runner.av_sync)
    finished: list = []
    audio.on("playback_finished", lambda ev: finished.append(ev))
    await runner.start()
    await asyncio.sleep(1.0)
    tone = (8000 * np.sin(np.arange(16000 * 6) / 8)).astype(np.int16)
    ttff, interrupts = [], []
    for _ in range(utterances):
        n = len(finished)
        t0 = time.perf_counter()
        for f in _frames(tone[:16000]):
            await audio.capture_frame(f)
        audio.flush()
        ttff.append(await _first_sent(t0, ("talking",)) - t0)
        while len(finished) == n:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.37)  # vary the phase against the chunk clock, as bench_serve.py does
    for k in range(utterances):
        n = len(finished)
        t0 = time.perf_counter()
        for f in _frames(tone):
            await audio.capture_frame(f)
        audio.flush()
        await _first_sent(t0, ("talking",))
        await asyncio.sleep(1.0 + 0.07 * k)
        t1 = time.perf_counter()
        audio.clear_buffer()
        interrupts.append(await _first_sent(t1, ("listening", "idle", "silent")) - t1)
        while len(finished) == n:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
    # frames per second held: an idle session (no agent speech), as bench_serve.py's fps part
    m0 = gen.metrics.summary()
    i0, t0 = len(_sent), time.perf_counter()
    await asyncio.sleep(seconds)
    i1, t1 = len(_sent), time.perf_counter()
    m1 = gen.metrics.summary()
    sent = _sent[i0:i1]
    fps = {"seconds": round(t1 - t0, 2), "sent_fps": round(len(sent) / (t1 - t0), 2),
           "generated_fps": round(12 * (m1["chunks"] - m0["chunks"]) / (t1 - t0), 2),
           "repeated_frames": sum(1 for _, s in sent if s == "repeat"),
           "synchronizer_actual_fps": round(runner.av_sync.actual_fps, 2), "rtf": m1["rtf"],
           "step_ms_p50": m1["step_ms_p50"], "step_ms_p95": m1["step_ms_p95"]}
    positions = [round(ev.playback_position, 3) for ev in finished]
    await runner.aclose()
    await gen.aclose()
    return {"ttff": _stats(ttff), "interrupt": _stats(interrupts), "fps": fps,
            "playback_finished_positions_s": positions, "generator": gen.metrics.summary()}


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _server(args: argparse.Namespace) -> dict:
    """bench_serve.py with the same model, utterances and fps seconds (its A/V simulation shortened)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "benchmarks/bench_serve.py", "--model", args.model, "--seconds", str(args.seconds),
           "--utterances", str(args.utterances), "--simulated-seconds", "10", "--json"]
    if args.model == "fake":
        cmd += ["--size", "128"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    srv = json.loads(r.stdout.strip().splitlines()[-1])
    return {"latency": srv["latency"], "fps": srv["fps"][0], "model": srv["model"], "video": srv["video"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="default (the bundled model), a model folder, or fake")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of idle streaming for the fps part")
    p.add_argument("--utterances", type=int, default=6)
    p.add_argument("--no-server", action="store_true", help="skip the built-in server part")
    p.add_argument("--rounds", type=int, default=2, help="alternating LiveKit / server rounds (default 2)")
    p.add_argument("--out", default=None, help="write the JSON here too")
    args = p.parse_args()
    t_start = time.perf_counter()
    result: dict = {"model": args.model, "cpu_count": os.cpu_count(), "load_average_1min_start": _load_average()}
    t0 = time.perf_counter()
    if args.model == "fake":
        pipe, image = FakeAvatarPipeline(128, 128), np.full((128, 128, 3), 90, np.uint8)
    else:
        pipe = sa.load(args.model, warmup=True)
        image = str(bundled_inputs()[0])
    import torch

    result.update({"model_name": getattr(pipe, "name", args.model), "video": f"{pipe.frame_size[1]}x"
                   f"{pipe.frame_size[0]}@25", "torch_threads": torch.get_num_threads(),
                   "load_s": round(time.perf_counter() - t0, 2)})
    rounds = []
    for r in range(args.rounds):  # alternate the two paths, so load changes on this shared machine hit both
        rnd: dict = {"round": r + 1, "load_average_1min_before": _load_average()}
        t0 = time.perf_counter()
        _sent.clear()
        _states.clear()
        rnd["livekit"] = asyncio.run(_livekit(pipe, image, args.utterances, args.seconds))
        rnd["livekit"]["wall_s"] = round(time.perf_counter() - t0, 1)
        rnd["load_average_1min_mid"] = _load_average()
        if not args.no_server:
            rnd["server"] = _server(args)
        rnd["load_average_1min_after"] = _load_average()
        rounds.append(rnd)
    result["rounds"] = rounds
    side: dict = {}
    for rnd in rounds:
        lk, srv = rnd["livekit"], rnd.get("server", {})
        row = {"ttff_mean_ms": {"livekit": lk["ttff"]["mean_ms"]},
               "interrupt_mean_ms": {"livekit": lk["interrupt"]["mean_ms"]},
               "fps_sent": {"livekit": lk["fps"]["sent_fps"]}, "fps_generated": {"livekit": lk["fps"]["generated_fps"]},
               "rtf": {"livekit": lk["fps"]["rtf"]}}
        if "latency" in srv:
            row["ttff_mean_ms"]["server"] = srv["latency"]["ttff_server"]["mean_ms"]
            row["interrupt_mean_ms"]["server"] = srv["latency"]["interrupt_server"]["mean_ms"]
            row["fps_sent"]["server"] = srv["fps"]["server_fps"][0]
            row["fps_generated"]["server"] = srv["fps"].get("generated_fps", [None])[0]
            row["rtf"]["server"] = srv["fps"]["rtf"][0]
        side[f"round {rnd['round']}"] = row
    result["side_by_side"] = side
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The server driving the real engine (small random model): an utterance plays out in full, then an interrupt
cuts the next one off and the avatar goes back to listening/idle."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import websockets

from streamavatar.serve.ws_protocol import encode_audio
from tests.serve.helpers import create_session, fake_config, next_event, running_server


async def wait_for_ready(client: httpx.AsyncClient, base: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if (await client.get(f"http://{base}/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not become ready")


def test_server_with_engine_speaks_and_interrupts(small_pipe, speechlike):
    pcm = (speechlike[:16000] * 32767).astype(np.int16)

    async def main():
        async with running_server(fake_config(), pipeline=small_pipe) as (base, _):
            async with httpx.AsyncClient() as c:
                await wait_for_ready(c, base)
                s = await create_session(c, base)
                assert s["video"]["width"] == 64
                assert s["frame_codes"] is False  # the page hides its fake-model row for a real model
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url) as ws:
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await ws.send(encode_audio("talk", pcm))
                    await ws.send(json.dumps({"type": "speak_end"}))
                    await next_event(ws, "speak_started", 20)
                    ended = await next_event(ws, "speak_ended", 20)
                    assert ended["played_ms"] == 1000.0 and not ended["interrupted"]
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 16000}))
                    await ws.send(encode_audio("talk", np.tile(pcm, 3)))
                    await next_event(ws, "speak_started", 20)
                    await ws.send(json.dumps({"type": "interrupt"}))
                    cut = await next_event(ws, "speak_ended", 20)
                    assert cut["interrupted"] and cut["played_ms"] < 3000
                    done = await next_event(ws, "interrupt_done", 20)
                    assert done["latency_s"] < 2.0

    asyncio.run(main())

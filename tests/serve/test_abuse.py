"""Hostile or broken clients: malformed SDP, garbage and oversized WebSocket messages, wrong sample rates,
unknown ids, bad uploads, rapid create/delete. The server answers with clear errors and keeps running."""

from __future__ import annotations

import asyncio
import gc
import io
import json

import httpx
import numpy as np
import psutil
import websockets
from PIL import Image

from streamavatar.serve.app import create_app
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from streamavatar.serve.ws_protocol import encode_audio
from tests.serve.helpers import API_KEY, create_session, fake_config, next_event, png_bytes, running_server, wait_for

KEY = {"Authorization": f"Bearer {API_KEY}"}


async def _drain_until_closed(ws) -> None:
    """Read until the server's close frame (unread events would otherwise hold it back)."""
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed:
        pass


def test_malformed_sdp_is_refused_and_the_session_keeps_running():
    bad_bodies = [b"not json", b"[1, 2]", json.dumps({"sdp": 1, "type": "offer"}).encode(),
                  json.dumps({"sdp": "v=0\r\n", "type": "answer"}).encode(),
                  json.dumps({"sdp": "garbage", "type": "offer"}).encode(),
                  json.dumps({"sdp": "v=0\r\nm=video 9 FOO 96\r\n", "type": "offer"}).encode(),
                  json.dumps({"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "type": "offer"}).encode(),
                  json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 20000, "type": "offer"}).encode(),
                  bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))]

    async def main():
        async with running_server(fake_config(max_sdp_bytes=16384)) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                tok = {"Authorization": f"Bearer {s['token']}", "Content-Type": "application/json"}
                for body in bad_bodies:
                    r = await c.post(f"http://{base}/v1/sessions/{s['session_id']}/offer", content=body, headers=tok)
                    assert r.status_code in (400, 413), (body[:40], r.status_code, r.text)
                    assert r.json()["error"]["message"]
                rt = app.state.manager.get(s["session_id"])
                assert not rt.peers and not rt.closed
                before = rt.slot
                await wait_for(lambda: rt.slot > before + 5, 5)
                assert (await c.get(f"http://{base}/healthz")).status_code == 200

    asyncio.run(main())


def test_garbage_ws_messages_get_error_events_and_the_connection_survives():
    garbage = ["{", "[]", "42", json.dumps({"type": "nope"}), json.dumps({"type": "speak_start", "x": 1}),
               json.dumps({"type": "speak_start", "utterance_id": "bad id with spaces"}),
               json.dumps({"type": "audio_format", "stream": "video", "sample_rate": 16000}),
               json.dumps({"type": "ping", "id": [1]}), json.dumps({"no_type": True})]
    bad_rates = [0, -5, 10 ** 9, "16000", True, 44100.5, None]
    binary = [b"", b"X\x00\x00", b"T\x00", b"\x00" * 10]

    async def main():
        async with running_server(fake_config(ws_max_message_bytes=4096)) as (base, app):
            async with httpx.AsyncClient() as c:
                s = await create_session(c, base)
                url = f"ws://{base}/v1/sessions/{s['session_id']}/ws?token={s['token']}"
                async with websockets.connect(url) as ws:
                    for text in garbage:
                        await ws.send(text)
                    for rate in bad_rates:
                        await ws.send(json.dumps({"type": "audio_format", "stream": "talk", "sample_rate": rate}))
                        await ws.send(json.dumps({"type": "speak_start", "sample_rate": rate}))
                    for data in binary:
                        await ws.send(data)
                    expected = len(garbage) + 2 * len(bad_rates) + len(binary)
                    errors = []
                    while len(errors) < expected:
                        e = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        if e["type"] == "error":
                            errors.append(e)
                    assert {e["code"] for e in errors} >= {"bad_json", "unknown_type", "bad_message",
                                                          "bad_sample_rate", "bad_audio"}
                    await ws.send(json.dumps({"type": "ping", "id": 7}))
                    assert (await next_event(ws, "pong"))["id"] == 7
                    # a valid declared rate that differs from the model's is resampled, not refused
                    await ws.send(json.dumps({"type": "speak_start", "sample_rate": 22050}))
                    tone = (8000 * np.sin(np.arange(22050) / 10)).astype(np.int16)
                    for part in np.array_split(tone, 12):
                        await ws.send(encode_audio("talk", part))
                    await ws.send(json.dumps({"type": "speak_end"}))
                    ended = await next_event(ws, "speak_ended")
                    assert abs(ended["played_ms"] - 1000) <= 40 and not ended["interrupted"]
                    # oversized message: closed with 1009, the session lives on
                    await ws.send(b"T" + b"\x00" * 8000)
                    await asyncio.wait_for(_drain_until_closed(ws), 10)
                    assert ws.close_code == 1009
                rt = app.state.manager.get(s["session_id"])
                assert not rt.closed and rt.metrics.protocol_errors >= expected
                async with websockets.connect(url) as ws:
                    assert json.loads(await ws.recv())["type"] == "hello"
                    for _ in range(105):  # a client that only sends garbage is cut off
                        await ws.send("{")
                    await asyncio.wait_for(_drain_until_closed(ws), 10)
                    assert ws.close_code == 4408

    asyncio.run(main())


def test_unknown_ids_and_bad_uploads_get_clear_errors():
    async def main():
        async with running_server(fake_config(max_image_pixels=200 * 200, max_upload_bytes=50_000)) as (base, _):
            async with httpx.AsyncClient() as c:
                url = f"http://{base}"
                s = await create_session(c, base)
                tok = {"Authorization": f"Bearer {s['token']}"}
                for method, path in (("GET", "/v1/sessions/nope"), ("DELETE", "/v1/sessions/nope"),
                                     ("POST", "/v1/sessions/nope/token")):
                    assert (await c.request(method, url + path, headers=KEY)).status_code == 404
                    assert (await c.request(method, url + path, headers=tok)).status_code == 401
                assert (await c.delete(url + "/v1/avatars/nope", headers=KEY)).status_code == 404
                r = await c.post(url + "/v1/sessions", json={"avatar_id": "0" * 16}, headers=KEY)
                assert r.status_code == 404 and "POST /v1/avatars" in r.json()["error"]["message"]
                for body in ({"avatar_id": 5}, ["x"], {}):
                    assert (await c.post(url + "/v1/sessions", json=body, headers=KEY)).status_code == 400
                try:
                    async with websockets.connect(f"ws://{base}/v1/sessions/nope/ws?token={s['token']}"):
                        raise AssertionError("unknown session accepted")
                except websockets.InvalidStatus as exc:
                    assert exc.response.status_code == 403

                def upload(data, ctype="image/png"):
                    return c.post(url + "/v1/avatars", content=data, headers={**KEY, "Content-Type": ctype})

                assert (await upload(b"")).status_code == 400
                assert (await upload(b"definitely not an image")).status_code == 400
                assert (await upload(png_bytes((1, 1, 1), size=16))).status_code == 400  # too small
                r = await upload(png_bytes((1, 1, 1), size=300))
                assert r.status_code == 413 and "max_image_pixels" in r.json()["error"]["message"]
                assert (await upload(b"\x89PNG" + bytes(60_000))).status_code == 413  # too many bytes
                buf = io.BytesIO()
                Image.new("RGB", (64, 64)).save(buf, format="GIF")
                assert (await upload(buf.getvalue(), "image/gif")).status_code == 400
                r = await c.post(url + "/v1/sessions", content=b"x", headers={**KEY, "Content-Type": "text/plain"})
                assert r.status_code == 415
                ok = await upload(png_bytes((5, 6, 7)))
                again = await upload(png_bytes((5, 6, 7)))
                assert ok.status_code == 200 and ok.json()["avatar_id"] == again.json()["avatar_id"]  # cached by hash
                assert (await c.get(url + "/healthz")).status_code == 200

    asyncio.run(main())


def test_50_rapid_create_delete_cycles_leak_no_sessions_tasks_or_memory():
    async def main():
        config = fake_config(max_sessions=2, fake_size=256)
        app = create_app(config, pipeline=FakeAvatarPipeline(256, 256))
        proc = psutil.Process()
        async with app.router.lifespan_context(app):
            manager = app.state.manager
            await wait_for(lambda: manager.ready, 10)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                aid = (await c.post("/v1/avatars", content=png_bytes((10, 20, 30), 256),
                                    headers={**KEY, "Content-Type": "image/png"})).json()["avatar_id"]

                async def cycle(i):
                    r = await c.post("/v1/sessions", json={"avatar_id": aid}, headers=KEY)
                    assert r.status_code == 201, r.text
                    s = r.json()
                    if i % 3 == 0:
                        await asyncio.sleep(0.05)  # let some sessions generate and send first
                    r = await c.delete(f"/v1/sessions/{s['session_id']}",
                                       headers={"Authorization": f"Bearer {s['token']}"})
                    assert r.status_code == 200

                await cycle(0)
                gc.collect()
                tasks_before = len(asyncio.all_tasks())
                rss_before = proc.memory_info().rss
                for i in range(50):
                    await cycle(i)
                await asyncio.sleep(0.1)
                gc.collect()
                assert manager.sessions == {}
                assert len(asyncio.all_tasks()) == tasks_before
                assert manager._tokens == {}
                grown_mb = (proc.memory_info().rss - rss_before) / 2 ** 20
                assert grown_mb < 40, grown_mb

    asyncio.run(main())

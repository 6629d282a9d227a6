"""Property tests (hypothesis) over the server's HTTP and WebSocket inputs: whatever a client sends, the answer is
success or a 4xx in the one error shape, never a 5xx, never a dead handler. One real server (fake generator) on
127.0.0.1 runs in a thread for the whole module; examples are few (bounded time) and have no deadline (the
machine is shared)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse

import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamavatar.serve.app import create_app
from streamavatar.serve.fake_generator import FakeAvatarPipeline
from tests.serve.helpers import API_KEY, fake_config, png_bytes

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server():
    """A live server in a background thread and one session on it: ``(base, app, session)``."""
    config = fake_config(max_sessions=3, max_talk_queue_s=3.0, idle_timeout_s=600)
    app = create_app(config, pipeline=FakeAvatarPipeline(64, 64))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="on",
                                        ws_max_size=config.ws_max_message_bytes + 1024))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < end and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    base = f"127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
    while httpx.get(f"http://{base}/readyz").status_code != 200:
        time.sleep(0.05)
    session = httpx.post(f"http://{base}/v1/sessions", content=png_bytes((9, 9, 9)),
                         headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "image/png"}).json()
    yield base, app, session
    srv.should_exit = True
    thread.join(30)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
huge_int = st.integers(4000, 6000).map(lambda n: "9" * n)
bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda k, v: json.dumps({k: v}).encode(), st.sampled_from(["avatar_id", "sdp", "type"]), json_values),
    huge_int.map(lambda d: b'{"avatar_id": ' + d.encode() + b"}"),
    huge_int.map(lambda d: b'{"sdp": ' + d.encode() + b', "type": "offer"}'),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b"\xff\xfe\xfd", b'{"avatar_id": "\xc3\x28"}', png_bytes((1, 2, 3)), b"\x89PNG\r\n\x1a\n"]),
)
segment = st.text(max_size=30).map(lambda t: urllib.parse.quote(t, safe=""))
PATHS = ["/", "/healthz", "/readyz", "/metrics", "/v1/config", "/v1/avatars", "/v1/avatars/{x}", "/v1/sessions",
         "/v1/sessions/{sid}", "/v1/sessions/{sid}/token", "/v1/sessions/{sid}/offer", "/v1/sessions/{sid}/ws",
         "/static/{x}", "/{x}", "/v1/{x}/{x}"]


requests = st.one_of(
    # anything anywhere
    st.tuples(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), st.sampled_from(PATHS),
              st.sampled_from(["none", "key", "token", "garbage"]),
              st.sampled_from([None, "application/json", "image/png", "image/jpeg", "text/plain",
                               "application/octet-stream", "multipart/form-data; boundary=x", "\u00e9/\u00e9"])),
    # the endpoints that parse a body, called the way a client would (so malformed bodies reach the parsers)
    st.tuples(st.just("POST"), st.just("/v1/sessions"), st.just("key"), st.just("application/json")),
    st.tuples(st.just("POST"), st.just("/v1/sessions/{sid}/offer"), st.just("token"), st.just("application/json")),
    st.tuples(st.just("POST"), st.sampled_from(["/v1/avatars", "/v1/sessions"]), st.just("key"),
              st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"])),
)


def test_non_ascii_session_id_with_a_token_is_401_not_500(server):
    # Found by the fuzz test below: hmac.compare_digest raised TypeError on non-ASCII str ids (500).
    base, _app, session = server
    for sid in ("%C2%80", "%C3%A9t%C3%A9", "%E2%82%AC" * 5):
        for path in ("/v1/sessions/{sid}", "/v1/sessions/{sid}/token"):
            r = httpx.request("GET" if path.endswith("{sid}") else "POST", f"http://{base}" + path.format(sid=sid),
                              headers={"Authorization": f"Bearer {session['token']}"}, timeout=30)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, sid, r.text)


def test_audio_format_with_an_unhashable_stream_is_bad_message_not_1011():
    # Found by the fuzz test below: `[] in STREAMS` (a dict) raised TypeError and closed the socket with 1011.
    from streamavatar.serve.ws_protocol import ProtocolError, parse_text

    for stream in ([], {}, ["talk"]):
        with pytest.raises(ProtocolError) as bad:
            parse_text(json.dumps({"type": "audio_format", "stream": stream, "sample_rate": 16000}))
        assert bad.value.code == "bad_message"


@FUZZ
@given(request=requests, known_session=st.booleans(), x=segment, body=bodies)
def test_http_answers_are_success_or_4xx_in_the_error_shape(server, request, known_session, x, body):
    method, path, auth, ctype = request
    base, _app, session = server
    sid = session["session_id"] if known_session or path.endswith("/offer") else x
    if method == "DELETE" and "{sid}" in path and sid == session["session_id"]:
        sid = "not-the-fixture-session"  # keep the shared session alive for the other examples
    url = f"http://{base}" + path.replace("{sid}", sid).replace("{x}", x)
    headers = {}
    if auth != "none":
        headers["Authorization"] = "Bearer " + {"key": API_KEY, "token": session["token"], "garbage": "x" * 20}[auth]
    if ctype is not None:
        headers["Content-Type"] = ctype.encode("utf-8")  # raw bytes: non-ASCII header values too
    r = httpx.request(method, url, content=body if method not in ("GET", "HEAD") else None, headers=headers,
                      timeout=30)
    assert r.status_code < 500, (method, url, r.status_code, r.text[:300])
    if r.status_code >= 400 and method != "HEAD":
        assert r.headers["content-type"].startswith("application/json"), (method, url, r.status_code, r.text[:200])
        err = r.json()["error"]
        assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    if method == "POST" and path == "/v1/sessions" and r.status_code == 201:  # do not keep fuzz-made sessions
        httpx.delete(f"http://{base}/v1/sessions/{r.json()['session_id']}",
                     headers={"Authorization": f"Bearer {API_KEY}"})


control_types = st.sampled_from(["speak_start", "speak_end", "interrupt", "start_listening", "stop_listening",
                                 "auto_listening", "audio_format", "ping", "nope", ""])
control = st.builds(
    lambda kind, extra: json.dumps({"type": kind, **extra}),
    control_types,
    st.dictionaries(st.sampled_from(["utterance_id", "sample_rate", "stream", "id", "other"]),
                    json_values | st.sampled_from([16000, 8000, 96000, 7999, "talk", "listen", "u1"]), max_size=3))
ws_messages = st.lists(st.one_of(
    control,
    st.text(max_size=60),
    huge_int.map(lambda d: '{"type": "ping", "id": ' + d + "}"),
    huge_int.map(lambda d: '{"type": "audio_format", "stream": "talk", "sample_rate": ' + d + "}"),
    st.builds(lambda tag, data: tag + data, st.sampled_from([b"T", b"L", b"X", b""]), st.binary(max_size=600)),
    st.integers(1, 20).map(lambda k: b"T" + (np.ones(8000 * k, np.int16) * 300).tobytes()),
), max_size=12)


@FUZZ
@given(messages=ws_messages)
def test_websocket_messages_get_events_or_errors_and_the_handler_lives(server, messages):
    base, app, session = server
    url = f"ws://{base}/v1/sessions/{session['session_id']}/ws?token={session['token']}"

    async def run() -> None:
        async with websockets.connect(url, max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            for m in messages:
                await ws.send(m)
            await ws.send(json.dumps({"type": "ping", "id": "end"}))
            errors = []
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if event["type"] == "error":
                    errors.append(event)
                if event["type"] == "pong" and event["id"] == "end":
                    break
            for e in errors:
                assert isinstance(e["code"], str) and e["message"] and e["code"] != "internal_error", e
            await ws.send(json.dumps({"type": "interrupt"}))  # leave no queued speech to the next example

    asyncio.run(run())
    rt = app.state.manager.get(session["session_id"])
    assert not rt.closed
    assert rt._generator.queued_talk_samples <= 3 * 16000  # max_talk_queue_s: a piece that does not fit: refused

"""``streamavatar livekit-worker`` as a user runs it (subprocesses). Runs with and without the extra: without
it the command must say which extra to install; with it, bad input is one line and exit 2, and the dispatcher
started from the command line launches a real ``--join`` worker per room (which here cannot reach a LiveKit
server, so it exits and is reaped)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HAVE_LIVEKIT = importlib.util.find_spec("livekit") is not None and importlib.util.find_spec("livekit.agents")


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_help_lists_livekit_worker():
    r = run_cli("--help")
    assert r.returncode == 0 and "livekit-worker" in r.stdout


def test_without_the_extra_the_command_names_it(tmp_path):
    shadow = tmp_path / "livekit"  # a "livekit" that fails to import, ahead of any installed one
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('simulated: livekit not installed')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    r = run_cli("livekit-worker", env={"PYTHONPATH": path})
    assert r.returncode == 2 and "streamavatar[livekit]" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not HAVE_LIVEKIT, reason='needs the [livekit] extra: pip install "streamavatar[livekit]"')
@pytest.mark.parametrize("args, fragment", [
    (["--join"], "--url"),
    (["--join", "--url", "wss://lk.example.com", "--token", "garbage"], "bad token"),
    (["--audio-sample-rate", "22049"], "multiple of 25"),
    (["--image", "/no/such/face.png"], "no such file"),
])
def test_bad_input_is_one_line_exit_2(args, fragment):
    r = run_cli("livekit-worker", *args)
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.skipif(not HAVE_LIVEKIT, reason='needs the [livekit] extra: pip install "streamavatar[livekit]"')
def test_dispatcher_from_the_command_line_launches_and_reaps_a_join_worker():
    from streamavatar.integrations.livekit import mint_avatar_token

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamavatar", "livekit-worker", "--port", str(port),
                             "--model", "fake", "--agent-timeout", "5", "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if _http("GET", base + "/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        tok = mint_avatar_token(room_name="room-1", agent_identity="agent-1", avatar_identity="avatar-1",
                                api_key="devkey", api_secret="a-test-secret-of-at-least-32-bytes!!")
        status, body = _http("POST", base + "/launch", {"room_name": "room-1", "url": "ws://127.0.0.1:1",
                                                         "token": tok})
        assert status == 202 and body["pid"] > 0
        status, body = _http("POST", base + "/launch", {"room_name": "room 1", "url": "ws://x", "token": tok})
        assert status == 400 and list(body) == ["error"]
        for _ in range(1200):  # the worker cannot reach a server: it exits and the dispatcher reaps it
            if not _http("GET", base + "/rooms")[1]["rooms"]:
                break
            time.sleep(0.1)
        assert _http("GET", base + "/rooms")[1]["rooms"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)

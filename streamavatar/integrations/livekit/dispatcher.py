"""The avatar dispatcher: ``POST /launch {room_name, url, token}`` starts one avatar worker process per room.

Run it on each avatar machine (``streamavatar livekit-worker``); agents (:class:`~.remote.StreamAvatarSession`)
call it when a room starts. Each worker is ``streamavatar livekit-worker --join`` in its own process (its own
model session and threads; a crash takes down one room only). The join token reaches the worker through its
environment, never its command line. Answers are JSON; every refusal is a 4xx with one ``{"error": "..."}``:

* 400 — body not a JSON object, a missing or non-string field, a bad room name, a URL that is not
  ``ws(s)://`` / ``http(s)://``, a token that is not a JWT, is expired, is for another room, or lacks
  ``lk.publish_on_behalf``;
* 401 — missing or wrong ``Authorization: Bearer <key>`` when the dispatcher has an API key;
* 409 — that room already has a live worker; 413 — body over 16 KiB; 429 — ``max_rooms`` workers running.

``GET /rooms`` lists the workers, ``GET /healthz`` answers ``{"ok": true}``. Workers that exit are reaped;
on shutdown the dispatcher terminates the workers it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from streamavatar.integrations.livekit.tokens import ROOM_NAME_RE, TokenError, check_avatar_token

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
#: The environment variable that carries the join token to a worker.
TOKEN_ENV = "STREAMAVATAR_LIVEKIT_TOKEN"


@dataclass
class LaunchRequest:
    room_name: str
    url: str
    token: str


@dataclass
class WorkerProcess:
    room_name: str
    process: asyncio.subprocess.Process
    started_at: float = field(default_factory=time.time)
    reaper: asyncio.Task | None = None


def default_worker_command(worker_args: Sequence[str] = ()) -> Callable[[LaunchRequest], list[str]]:
    """``python -m streamavatar livekit-worker --join --url URL --room ROOM <worker_args>``."""
    def command(req: LaunchRequest) -> list[str]:
        return [sys.executable, "-m", "streamavatar", "livekit-worker", "--join", "--url", req.url,
                "--room", req.room_name, *worker_args]
    return command


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def parse_launch(body: bytes) -> LaunchRequest:
    """Validate a ``/launch`` body; ``ValueError`` carries the one-line reason (answered as 400)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be a JSON object {room_name, url, token}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object {room_name, url, token}")
    for key in ("room_name", "url", "token"):
        if key not in data or data[key] in (None, ""):
            raise ValueError(f"missing field: {key}")
        if not isinstance(data[key], str):
            raise ValueError(f"field {key} must be a string")
    room, url, token = data["room_name"], data["url"], data["token"]
    if not ROOM_NAME_RE.match(room):
        raise ValueError("bad room_name: 1-128 characters of letters, digits and _ . : = @ + -, "
                         "starting with a letter or digit")
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.hostname or len(url) > 2048:
        raise ValueError("bad url: expected ws(s):// or http(s):// and a host")
    try:
        check_avatar_token(token, room)
    except TokenError as exc:
        raise ValueError(f"bad token: {exc}") from None
    return LaunchRequest(room, url, token)


def create_dispatcher_app(*, worker_command: Callable[[LaunchRequest], list[str]] | None = None,
                          max_rooms: int = 4, api_key: str | None = None,
                          env: dict[str, str] | None = None) -> FastAPI:
    """The dispatcher as a FastAPI app (``worker_command`` builds each worker's argv)."""
    command = worker_command or default_worker_command()
    workers: dict[str, WorkerProcess] = {}

    async def stop_all() -> None:
        for w in list(workers.values()):
            if w.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.process.terminate()
        for w in list(workers.values()):
            try:
                await asyncio.wait_for(w.process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()
                await w.process.wait()
            if w.reaper is not None:
                w.reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w.reaper
        workers.clear()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await stop_all()

    app = FastAPI(title="streamavatar LiveKit avatar dispatcher", lifespan=lifespan)
    app.state.workers = workers
    app.state.stop_all = stop_all

    def authorized(request: Request) -> bool:
        if not api_key:
            return True
        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {api_key}".encode())

    async def reap(w: WorkerProcess) -> None:
        code = await w.process.wait()
        logger.info("avatar worker for room %s exited with %s", w.room_name, code)
        if workers.get(w.room_name) is w:
            del workers[w.room_name]

    @app.post("/launch")
    async def launch(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, "missing or wrong API key (Authorization: Bearer <key>)")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            req = parse_launch(body)
        except ValueError as exc:
            return _error(400, str(exc))
        live = workers.get(req.room_name)
        if live is not None and live.process.returncode is None:
            return _error(409, f"room {req.room_name} already has an avatar worker (pid {live.process.pid})")
        if sum(1 for w in workers.values() if w.process.returncode is None) >= max_rooms:
            return _error(429, f"this dispatcher runs its maximum of {max_rooms} rooms")
        child_env = {**os.environ, **(env or {}), TOKEN_ENV: req.token}
        try:
            proc = await asyncio.create_subprocess_exec(*command(req), env=child_env, stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            return _error(500, f"could not start the avatar worker: {exc}")
        w = WorkerProcess(req.room_name, proc)
        w.reaper = asyncio.create_task(reap(w))
        workers[req.room_name] = w
        logger.info("avatar worker for room %s started (pid %s)", req.room_name, proc.pid)
        return JSONResponse({"room_name": req.room_name, "pid": proc.pid}, status_code=202)

    @app.get("/rooms")
    async def rooms(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, "missing or wrong API key (Authorization: Bearer <key>)")
        return JSONResponse({"max_rooms": max_rooms, "rooms": [
            {"room_name": w.room_name, "pid": w.process.pid, "started_at": w.started_at}
            for w in workers.values() if w.process.returncode is None]})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    return app

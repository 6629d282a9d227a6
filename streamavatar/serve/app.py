"""The FastAPI application: health, metrics, avatars, sessions, WebRTC offers and the session WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from streamavatar import constants as K
from streamavatar.errors import UserInputError
from streamavatar.serve.audio_in import StreamResampler
from streamavatar.serve.avatars import Avatar, AvatarStore, prepare_avatar, return_big_buffers_to_the_os
from streamavatar.serve.config import ServeConfig
from streamavatar.serve.generator import AvatarPipeline
from streamavatar.serve.loader import load_generator
from streamavatar.serve.manager import NotReady, SessionLimitReached, SessionManager
from streamavatar.serve.metrics import render_prometheus
from streamavatar.serve.sessions import SessionRuntime, _put_dropping
from streamavatar.serve.webrtc import answer_offer, restrict_ice_addresses, validate_offer
from streamavatar.serve.ws_protocol import ProtocolError, parse_binary, parse_text

log = logging.getLogger("streamavatar.serve")
STATIC_DIR = Path(__file__).with_name("static")
#: Close codes of the session WebSocket (4000-4999 are application-defined).
WS_UNAUTHORIZED, WS_TOO_MANY_ERRORS, WS_MESSAGE_TOO_BIG, WS_SERVER_ERROR = 4401, 4408, 1009, 1011
MAX_PROTOCOL_ERRORS = 100
#: How much lower than the server's own threads upload decoding runs (nice increment).
UPLOAD_THREAD_NICENESS = 10
#: Error codes of HTTP statuses the framework itself answers (unknown route, wrong method, ...).
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests"}
_SECRET_IN_QUERY = re.compile(r"((?:token|api_key|key)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Replaces ``token=...`` (and ``api_key=``/``key=``) query values in log records by ``***``: uvicorn logs
    every WebSocket handshake with its query string, and session tokens must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_IN_QUERY.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactSecrets` to uvicorn's loggers (idempotent)."""
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn", "streamavatar.serve"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape of every non-2xx answer: ``{"error": {"code": ..., "message": ...}}``."""
    return {"error": {"code": code, "message": message}}


def parse_json_body(raw: bytes, code: str, message: str) -> Any:
    """JSON from a request body, or a 400 ApiError for anything malformed (invalid UTF-8, bad syntax, nesting
    too deep, integers past Python's 4300-digit limit)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, code, message) from None


class ApiError(Exception):
    """An HTTP error with a machine-readable code and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"request body of {declared} bytes is more than the limit of {limit}")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError(413, "too_large", f"request body is more than the limit of {limit} bytes")
    return bytes(body)


def _lower_thread_priority() -> None:
    """Lower the calling thread's scheduling priority (Linux: nice is per thread; elsewhere a no-op)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPLOAD_THREAD_NICENESS)


def create_app(config: ServeConfig, pipeline: AvatarPipeline | None = None,
               token_clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """Build the server. ``pipeline`` skips loading ``config.model`` (tests pass a fake one)."""
    manager = SessionManager(config, now=token_clock)
    avatars = AvatarStore(config.max_avatars)
    counters = {"uploads_refused_busy": 0, "websockets_refused": 0}
    uploads_in_progress = [0]
    # Uploads are decoded on their own low-priority threads: on a busy machine the event loop (and so the slot
    # loop of every live session) and the generation threads get the CPU first.
    decoders = ThreadPoolExecutor(config.max_concurrent_uploads, thread_name_prefix="avatar-decode",
                                  initializer=_lower_thread_priority)
    install_log_redaction()
    return_big_buffers_to_the_os()  # a decoded 4096² upload must not stay in the allocator once freed

    async def load_and_warm_up() -> None:
        try:
            pipe = pipeline or await asyncio.to_thread(load_generator, config.model, config.fake_size, config.dtype)
            await manager.start(pipe)
            manager.not_ready_reason = "model is warming up"
            if config.warmup and hasattr(pipe, "warmup"):  # the pipeline's own warm-up (the engine's: once)
                await asyncio.to_thread(pipe.warmup)
        except Exception as exc:  # the process stays up and says why in /readyz
            log.exception("model failed to load")
            manager.not_ready_reason = f"model failed to load: {type(exc).__name__}: {exc}"
            return
        manager.mark_ready()
        log.info("ready: model=%s frame=%s sample_rate=%d", pipe.name, pipe.frame_size, pipe.sample_rate)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        restrict_ice_addresses(config.ice_addresses)
        startup = asyncio.create_task(load_and_warm_up(), name="load-model")  # /healthz answers meanwhile
        try:
            yield
        finally:
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
            await manager.shutdown()
            decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="streamavatar", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.manager = manager
    app.state.avatars = avatars
    app.state.config = config
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path[:100]}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path[:100]}"
        else:
            message = str(exc.detail)[:200]
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("bad_request", f"invalid request: {str(exc.errors())[:200]}"), status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path[:100], type(exc).__name__,
                  exc)
        return JSONResponse(error_body("internal_error", "the server failed on this request; it was logged"),
                            status_code=500)

    def require_api_key(request: Request) -> None:
        if not manager.check_api_key(_bearer(request)):
            raise ApiError(401, "unauthorized", "missing or invalid API key (send 'Authorization: Bearer KEY')")

    def session_for(request: Request, session_id: str) -> SessionRuntime:
        credential = _bearer(request)
        allowed = manager.check_token(session_id, credential) or (
            config.api_key is not None and manager.check_api_key(credential))
        if not allowed:
            raise ApiError(401, "unauthorized", "missing, expired or invalid session token "
                           "(send 'Authorization: Bearer TOKEN'; refresh with POST /v1/sessions/{id}/token)")
        try:
            return manager.get(session_id)
        except KeyError:
            raise ApiError(404, "unknown_session", f"no session {session_id[:40]!r}") from None

    def session_info(rt: SessionRuntime) -> dict[str, Any]:
        h, w = rt.frame_size
        return {"session_id": rt.id, "avatar_id": rt.reference_id, "state": rt.state, "frame": rt.slot,
                "media_time_s": round(rt.media_time, 3), "listen_mode": rt.listen_mode,
                "connected": rt.is_connected(), "video": {"width": w, "height": h, "fps": K.VIDEO_FPS},
                "audio": {"sample_rate": rt.sample_rate},
                "frame_codes": bool(getattr(manager.pipeline, "frame_codes", False))}

    # --- health, readiness, metrics, config -----------------------------------------------------------------
    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if manager.ready:
            return JSONResponse({"ready": True, "model": manager.pipeline.name})
        return JSONResponse({"ready": False, "reason": manager.not_ready_reason}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        server = {"streamavatar_ready": float(manager.ready), "streamavatar_sessions_active": len(manager.sessions),
                  "streamavatar_max_sessions": config.max_sessions, "streamavatar_avatars_cached": len(avatars),
                  "streamavatar_avatar_cache_bytes": avatars.nbytes,
                  "streamavatar_avatars_evicted_total": avatars.evicted,
                  "streamavatar_uploads_refused_busy_total": counters["uploads_refused_busy"],
                  "streamavatar_websockets_refused_total": counters["websockets_refused"],
                  "streamavatar_tokens_revoked_total": manager.tokens_revoked}
        snaps = {sid: rt.metrics_snapshot() for sid, rt in manager.sessions.items()}
        return PlainTextResponse(render_prometheus(snaps, server), media_type="text/plain; version=0.0.4")

    @app.get("/v1/config")
    async def get_config(request: Request) -> dict:
        require_api_key(request)
        return config.public_dict()

    # --- avatars ----------------------------------------------------------------------------------------------
    async def upload_avatar(request: Request) -> Avatar:
        """Decode, fit and cache the uploaded image (in a worker thread); the cached Avatar."""
        if manager.pipeline is None:
            raise ApiError(503, "not_ready", f"the server is not ready: {manager.not_ready_reason}; avatars are "
                           "stored at the model's frame size, so uploads wait for the model")
        if uploads_in_progress[0] >= config.max_concurrent_uploads:
            counters["uploads_refused_busy"] += 1
            raise ApiError(429, "busy", f"{uploads_in_progress[0]} uploads are being decoded (max_concurrent_uploads="
                           f"{config.max_concurrent_uploads}); retry in a moment")
        uploads_in_progress[0] += 1
        try:
            data = await _read_body(request, config.max_upload_bytes)
            # Decoding, resizing and hashing take ~0.2 s for a 4096² image: a worker thread, not the event loop.
            avatar = await asyncio.get_running_loop().run_in_executor(
                decoders, prepare_avatar, data, config.max_upload_bytes, config.max_image_pixels,
                manager.pipeline.frame_size)
        except UserInputError as exc:
            raise ApiError(413 if "more than" in str(exc) else 400, "bad_image", str(exc)) from None
        finally:
            uploads_in_progress[0] -= 1
        return avatars.add(avatar)

    @app.post("/v1/avatars")
    async def post_avatar(request: Request) -> dict:
        require_api_key(request)
        return (await upload_avatar(request)).info()

    @app.get("/v1/avatars")
    async def list_avatars(request: Request) -> dict:
        require_api_key(request)
        return {"avatars": avatars.list()}

    @app.delete("/v1/avatars/{avatar_id}")
    async def delete_avatar(request: Request, avatar_id: str) -> dict:
        require_api_key(request)
        if not avatars.delete(avatar_id):
            raise ApiError(404, "unknown_avatar", f"no avatar {avatar_id[:40]!r}")
        return {"deleted": avatar_id}

    # --- sessions ---------------------------------------------------------------------------------------------
    @app.post("/v1/sessions", status_code=201)
    async def create_session(request: Request) -> dict:
        require_api_key(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            raw = await _read_body(request, 4096)
            body = parse_json_body(raw or b"{}", "bad_json", "the body must be JSON like {\"avatar_id\": \"...\"}")
            aid = body.get("avatar_id") if isinstance(body, dict) else None
            if not isinstance(aid, str):
                raise ApiError(400, "bad_request", "send {\"avatar_id\": ID} (from POST /v1/avatars) as JSON, "
                               "or the reference image itself with Content-Type image/*")
            try:
                avatar = avatars.get(aid)
            except KeyError:
                raise ApiError(404, "unknown_avatar", f"no avatar {aid[:40]!r}; upload it with POST /v1/avatars") \
                    from None
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            avatar = await upload_avatar(request)
        else:
            raise ApiError(415, "unsupported_media_type", f"Content-Type must be application/json or image/*, got "
                           f"{ctype[:60]!r}")
        try:
            runtime, token = await manager.create(avatar.image, reference_id=avatar.id)
        except NotReady as exc:
            raise ApiError(503, "not_ready", f"the server is not ready: {exc}") from None
        except SessionLimitReached as exc:
            raise ApiError(429, "session_limit", str(exc)) from None
        info = session_info(runtime)
        info.update(token=token.value, token_expires_in_s=config.token_ttl_s,
                    ice_servers=[{"urls": list(config.ice_servers)}] if config.ice_servers else [],
                    offer_url=f"/v1/sessions/{runtime.id}/offer", ws_url=f"/v1/sessions/{runtime.id}/ws",
                    idle_timeout_s=config.idle_timeout_s, max_duration_s=config.max_duration_s)
        return info

    @app.get("/v1/sessions")
    async def list_sessions(request: Request) -> dict:
        require_api_key(request)
        return {"sessions": [session_info(rt) for rt in manager.sessions.values()],
                "max_sessions": config.max_sessions}

    @app.get("/v1/sessions/{session_id}")
    async def get_session(request: Request, session_id: str) -> dict:
        return session_info(session_for(request, session_id))

    @app.delete("/v1/sessions/{session_id}")
    async def delete_session(request: Request, session_id: str) -> dict:
        session_for(request, session_id)
        with contextlib.suppress(KeyError):
            await manager.delete(session_id)
        return {"deleted": session_id}

    @app.post("/v1/sessions/{session_id}/token")
    async def refresh_token(request: Request, session_id: str) -> dict:
        rt = session_for(request, session_id)
        return {"token": manager.issue_token(rt.id).value, "token_expires_in_s": config.token_ttl_s}

    @app.post("/v1/sessions/{session_id}/offer")
    async def offer(request: Request, session_id: str) -> dict:
        rt = session_for(request, session_id)
        raw = await _read_body(request, config.max_sdp_bytes + 1024)
        body = parse_json_body(raw, "bad_offer", "the offer must be JSON {\"sdp\": ..., \"type\": \"offer\"}")
        try:
            answer = await answer_offer(rt, validate_offer(body, config.max_sdp_bytes), config.video_codec)
        except ProtocolError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        return {"sdp": answer.sdp, "type": answer.type}

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def session_ws(websocket: WebSocket, session_id: str) -> None:
        token = websocket.query_params.get("token")
        if not manager.check_token(session_id, token) or session_id not in manager.sessions:
            await _refuse_ws(websocket, 403, "unauthorized", "missing, expired or invalid session token (connect "
                             "to ws_url?token=TOKEN; refresh it with POST /v1/sessions/{id}/token)", WS_UNAUTHORIZED)
            return
        rt = manager.get(session_id)
        if rt.websockets >= config.max_websockets_per_session:
            counters["websockets_refused"] += 1
            await _refuse_ws(websocket, 429, "too_many_websockets", f"{rt.websockets} WebSockets are open on this "
                             f"session (max_websockets_per_session={config.max_websockets_per_session}); close one "
                             "first", WS_TOO_MANY_ERRORS)
            return
        await websocket.accept()
        await _serve_ws(websocket, rt, config)

    # --- web client -------------------------------------------------------------------------------------------
    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _refuse_ws(websocket: WebSocket, status: int, code: str, message: str, close_code: int) -> None:
    """Refuse a WebSocket handshake with an HTTP answer in the error shape (where the server supports denial
    responses; otherwise a close with ``close_code``, which clients see as HTTP 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(error_body(code, message), status_code=status))
    else:
        await websocket.close(code=close_code)


async def _serve_ws(websocket: WebSocket, rt: SessionRuntime, config: ServeConfig) -> None:
    """Run one session WebSocket: events out; control messages and tagged PCM in."""
    rt.websockets += 1
    rt.touch()
    events = rt.subscribe()
    _put_dropping(events, rt.hello())
    sender = asyncio.create_task(_send_events(websocket, events), name=f"ws-send-{rt.id}")
    rates = {"talk": rt.sample_rate, "listen": rt.sample_rate}
    resamplers = {s: StreamResampler(r, rt.sample_rate) for s, r in rates.items()}
    errors = 0
    try:
        while not rt.closed:
            receive = asyncio.create_task(websocket.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            msg = receive.result()
            if msg["type"] == "websocket.disconnect":
                break
            data: bytes | str | None = msg.get("bytes") if msg.get("bytes") is not None else msg.get("text")
            if data is None:
                continue
            if len(data) > config.ws_max_message_bytes:
                rt.publish_error("too_large", f"message of {len(data)} bytes is more than ws_max_message_bytes="
                                 f"{config.ws_max_message_bytes}")
                await websocket.close(code=WS_MESSAGE_TOO_BIG)
                break
            rt.touch()
            try:
                if isinstance(data, bytes):
                    audio = parse_binary(data)
                    pcm = resamplers[audio.stream].push(audio.pcm)
                    if audio.stream == "talk":
                        rt.push_talk(pcm)
                    else:
                        rt.push_listen(pcm)
                else:
                    _handle_control(parse_text(data), rt, rates, resamplers, events)
            except ProtocolError as exc:
                errors += 1
                rt.publish_error(exc.code, exc.message)
                if errors > MAX_PROTOCOL_ERRORS:
                    await websocket.close(code=WS_TOO_MANY_ERRORS)
                    break
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # a bug must not kill the handler silently: say so, then close properly
        log.exception("session %s: WebSocket handler failed", rt.id)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        event = {"type": "error", "session_id": rt.id, "media_time_s": round(rt.media_time, 6), "frame": rt.slot,
                 "code": "internal_error", "message": f"the server failed on a message ({type(exc).__name__}); "
                 "this socket closes, the session goes on: reconnect"}
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(event))
            await websocket.close(code=WS_SERVER_ERROR)
    finally:
        rt.websockets -= 1
        rt.touch()
        rt.unsubscribe(events)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _handle_control(msg, rt: SessionRuntime, rates: dict, resamplers: dict, events: asyncio.Queue) -> None:
    kind, fields = msg.type, msg.fields
    if kind in ("speak_start", "audio_format"):
        stream = fields.get("stream", "talk")
        if "sample_rate" in fields and fields["sample_rate"] != rates[stream]:
            rates[stream] = fields["sample_rate"]
            resamplers[stream] = StreamResampler(rates[stream], rt.sample_rate)
        if kind == "speak_start":
            rt.speak_start(fields.get("utterance_id"))
    elif kind == "speak_end":
        rest = resamplers["talk"].flush()
        if rest.size:
            rt.push_talk(rest)
        rt.speak_end()
    elif kind == "interrupt":
        resamplers["talk"] = StreamResampler(rates["talk"], rt.sample_rate)
        rt.interrupt()
    elif kind == "start_listening":
        rt.set_listen_mode("on")
    elif kind == "stop_listening":
        rt.set_listen_mode("off")
    elif kind == "auto_listening":
        rt.set_listen_mode("auto")
    elif kind == "ping":
        _put_dropping(events, {"type": "pong", "id": fields.get("id"), "session_id": rt.id,
                               "media_time_s": round(rt.media_time, 6), "frame": rt.slot})


async def _send_events(websocket: WebSocket, events: asyncio.Queue) -> None:
    while True:
        event = await events.get()
        if event is None:
            with contextlib.suppress(Exception):
                await websocket.close(code=1000)
            return
        await websocket.send_text(json.dumps(event))

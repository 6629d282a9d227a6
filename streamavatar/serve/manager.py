"""The session registry: admission (``max_sessions``), tokens, idle/max-duration reaping and teardown."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamavatar.serve.config import ServeConfig
from streamavatar.serve.generator import AvatarPipeline
from streamavatar.serve.sessions import SessionRuntime, open_session

log = logging.getLogger("streamavatar.serve")


class SessionLimitReached(Exception):
    """All ``max_sessions`` slots are taken."""


class NotReady(Exception):
    """The model is not loaded and warmed up yet."""


@dataclass
class Token:
    """A short-lived bearer token for one session."""

    value: str
    session_id: str
    expires_at: float


class SessionManager:
    """Creates, finds and closes sessions; owns their tokens. ``now`` is the token clock (injectable)."""

    def __init__(self, config: ServeConfig, now: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.now = now
        self.pipeline: AvatarPipeline | None = None
        self.ready = False
        self.not_ready_reason = "model is loading"
        self.sessions: dict[str, SessionRuntime] = {}
        self._tokens: dict[str, Token] = {}
        self._creating = 0
        #: Tokens revoked because a session had ``max_tokens_per_session`` valid ones (exported at /metrics).
        self.tokens_revoked = 0
        self._generation_slots: asyncio.Semaphore | None = None
        self._reaper: asyncio.Task | None = None

    async def start(self, pipeline: AvatarPipeline) -> None:
        """Attach the loaded model and start reaping idle sessions."""
        self.pipeline = pipeline
        self._generation_slots = asyncio.Semaphore(self.config.parallel_generations)
        self._reaper = asyncio.create_task(self._reap_loop(), name="session-reaper")

    def mark_ready(self) -> None:
        """The model is loaded and warmed up."""
        self.ready = True
        self.not_ready_reason = ""

    async def shutdown(self) -> None:
        """Close every session and stop the reaper."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for sid in list(self.sessions):
            await self.delete(sid, reason="server_shutdown")

    async def create(self, reference: np.ndarray, reference_id: str | None = None) -> tuple[SessionRuntime, Token]:
        """Admit and start a session, or raise :class:`NotReady` / :class:`SessionLimitReached`."""
        if not self.ready or self.pipeline is None:
            raise NotReady(self.not_ready_reason)
        active = len(self.sessions) + self._creating
        if active >= self.config.max_sessions:
            raise SessionLimitReached(
                f"session limit reached: {active} of max_sessions={self.config.max_sessions} sessions are active; "
                "delete a session (DELETE /v1/sessions/{id}) or start the server with a larger --max-sessions")
        self._creating += 1
        try:
            gen = await asyncio.to_thread(open_session, self.pipeline, reference, self.config)
            sid = secrets.token_hex(8)
            runtime = SessionRuntime(sid, gen, self.pipeline.frame_size, self.pipeline.sample_rate, self.config,
                                     generation_slots=self._generation_slots, reference_id=reference_id,
                                     on_closed=self._forget)
            self.sessions[sid] = runtime
            await runtime.start()
        finally:
            self._creating -= 1
        log.info("session %s created (%d active)", sid, len(self.sessions))
        return runtime, self.issue_token(sid)

    def get(self, session_id: str) -> SessionRuntime:
        """The running session, or KeyError."""
        return self.sessions[session_id]

    async def delete(self, session_id: str, reason: str = "deleted") -> None:
        """Close a session and revoke its tokens (KeyError if unknown)."""
        runtime = self.sessions[session_id]
        await runtime.close(reason)
        self._forget(runtime)

    def _forget(self, runtime: SessionRuntime) -> None:
        if self.sessions.get(runtime.id) is runtime:
            del self.sessions[runtime.id]
            log.info("session %s closed (%s)", runtime.id, runtime.close_reason)
        for value in [v for v, t in self._tokens.items() if t.session_id == runtime.id]:
            del self._tokens[value]

    # --- tokens ---------------------------------------------------------------------------------------------
    def issue_token(self, session_id: str) -> Token:
        """A fresh token for ``session_id`` valid for ``token_ttl_s``; beyond ``max_tokens_per_session`` valid
        tokens the oldest of that session is revoked (so refreshing cannot grow the token table)."""
        self._drop_expired()
        token = Token(secrets.token_urlsafe(24), session_id, self.now() + self.config.token_ttl_s)
        self._tokens[token.value] = token
        mine = [v for v, t in self._tokens.items() if t.session_id == session_id]  # insertion order = age
        for value in mine[:max(0, len(mine) - self.config.max_tokens_per_session)]:
            del self._tokens[value]
            self.tokens_revoked += 1
        return token

    def check_token(self, session_id: str, value: str | None) -> bool:
        """Whether ``value`` is an unexpired token of ``session_id`` (constant-time comparison of the id)."""
        if not value:
            return False
        token = self._tokens.get(value)
        if token is None or token.expires_at <= self.now():
            return False
        # bytes: compare_digest refuses str with non-ASCII characters (a client can put any in the URL)
        return hmac.compare_digest(token.session_id.encode(), session_id.encode())

    def check_api_key(self, value: str | None) -> bool:
        """Whether ``value`` is the configured API key (always true when none is configured)."""
        if self.config.api_key is None:
            return True
        return value is not None and hmac.compare_digest(value.encode(), self.config.api_key.encode())

    def _drop_expired(self) -> None:
        now = self.now()
        for value in [v for v, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[value]

    # --- reaping --------------------------------------------------------------------------------------------
    async def _reap_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.config.idle_timeout_s / 2))
            now = loop.time()
            for sid, rt in list(self.sessions.items()):
                if now - rt.created_at >= self.config.max_duration_s:
                    await self._reap(sid, "max_duration")
                elif not rt.is_connected() and now - rt.last_activity >= self.config.idle_timeout_s:
                    await self._reap(sid, "idle_timeout")
            self._drop_expired()

    async def _reap(self, sid: str, reason: str) -> None:
        with contextlib.suppress(KeyError):
            await self.delete(sid, reason=reason)

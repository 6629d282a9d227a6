"""Server configuration: one dataclass, loaded from defaults < YAML < command-line flags.

Every field is a YAML key and a flag (``max_sessions`` <-> ``--max-sessions``); lists are written as
comma-separated flags. :func:`load_config` applies the precedence and validates; bad values raise
:class:`~streamavatar.errors.UserInputError`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from streamavatar.errors import UserInputError

BehindPolicy = Literal["hold", "drop"]
CHUNK_S = 0.48  # one chunk of 12 frames at 25 fps (streamavatar.constants.CHUNK_SECONDS)


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``streamavatar serve`` can be told. Times are seconds, sizes bytes."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "default"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    fake_size: int = 256
    max_sessions: int = 2
    api_key: str | None = None
    token_ttl_s: float = 600.0
    idle_timeout_s: float = 60.0
    max_duration_s: float = 3600.0
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_avatars: int = 32
    max_concurrent_uploads: int = 2
    ws_max_message_bytes: int = 1024 * 1024
    max_websockets_per_session: int = 4
    max_tokens_per_session: int = 8
    max_talk_queue_s: float = 120.0
    max_utterances: int = 16
    listen_backlog_s: float = 0.96
    max_sdp_bytes: int = 64 * 1024
    lead_chunks: int = 1
    lead_margin_s: float = 0.2
    interrupt_mode: Literal["drop", "mute"] = "drop"
    behind_policy: BehindPolicy = "hold"
    prebuffer_s: float = 0.6
    generate_in_thread: bool = True
    parallel_generations: int = 1
    video_codec: Literal["h264", "vp8"] = "h264"
    ice_servers: tuple[str, ...] = ()
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    metrics_interval_s: float = 1.0
    log_interval_s: float = 5.0
    warmup: bool = True

    def __post_init__(self) -> None:
        positive = ("port", "fake_size", "max_sessions", "token_ttl_s", "idle_timeout_s", "max_duration_s",
                    "max_upload_bytes", "max_image_pixels", "max_avatars", "max_concurrent_uploads",
                    "ws_max_message_bytes",
                    "max_websockets_per_session", "max_tokens_per_session", "max_talk_queue_s", "max_utterances",
                    "listen_backlog_s", "max_sdp_bytes",
                    "lead_chunks", "parallel_generations", "metrics_interval_s")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise UserInputError(f"{name} must be positive, got {value!r}")
        if not 0 <= self.prebuffer_s <= 10:
            raise UserInputError(f"prebuffer_s must be between 0 and 10 seconds, got {self.prebuffer_s}")
        least = max(CHUNK_S, self.prebuffer_s) + CHUNK_S  # an utterance must be able to start playing
        if self.max_talk_queue_s < least:
            raise UserInputError(f"max_talk_queue_s must be at least prebuffer_s plus one chunk ({least:g} s), "
                                 f"got {self.max_talk_queue_s}")
        if self.log_interval_s < 0:
            raise UserInputError(f"log_interval_s must be >= 0 (0 = off), got {self.log_interval_s}")
        if not 0 <= self.lead_margin_s <= 10:
            raise UserInputError(f"lead_margin_s must be between 0 and 10 seconds, got {self.lead_margin_s}")
        if self.dtype not in ("auto", "bf16", "fp32"):
            raise UserInputError(f"dtype must be 'auto', 'bf16' or 'fp32', got {self.dtype!r}")
        if self.interrupt_mode not in ("drop", "mute"):
            raise UserInputError(f"interrupt_mode must be 'drop' or 'mute', got {self.interrupt_mode!r}")
        if self.behind_policy not in ("hold", "drop"):
            raise UserInputError(f"behind_policy must be 'hold' or 'drop', got {self.behind_policy!r}")
        if self.video_codec not in ("h264", "vp8"):
            raise UserInputError(f"video_codec must be 'h264' or 'vp8', got {self.video_codec!r}")
        if self.port > 65535:
            raise UserInputError(f"port must be at most 65535, got {self.port}")
        for addr in self.ice_addresses:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise UserInputError(f"ice_addresses must be IP addresses, got {addr!r}") from None
        if self.api_key is not None and len(self.api_key) < 8:
            raise UserInputError("api_key must be at least 8 characters")

    def public_dict(self) -> dict[str, Any]:
        """The effective configuration with the API key masked (printed at start, served at /v1/config)."""
        d = dataclasses.asdict(self)
        d["api_key"] = "***" if self.api_key else None
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


FIELD_HELP = {
    "host": "address to bind (default 127.0.0.1, loopback only)",
    "port": "TCP port",
    "model": "'default', a model directory, or 'fake' (deterministic test generator)",
    "dtype": "compute dtype of the model: auto (bf16 where the machine computes it natively, else fp32), bf16 or "
             "fp32 (bf16 on a CPU is checked against fp32 once per machine)",
    "fake_size": "frame side in pixels of the fake generator",
    "max_sessions": "concurrent sessions; more get HTTP 429",
    "api_key": "key required to create sessions and upload avatars (Authorization: Bearer KEY)",
    "token_ttl_s": "lifetime of a session token in seconds",
    "idle_timeout_s": "close a session after this long with no WebSocket and no WebRTC peer",
    "max_duration_s": "close a session after this long in any case",
    "cors_origins": "comma-separated allowed CORS origins (empty: same origin only)",
    "max_upload_bytes": "largest accepted reference-image upload",
    "max_image_pixels": "largest accepted reference image (width x height)",
    "max_avatars": "cached reference images, each kept at the model's frame size (least recently used are evicted)",
    "max_concurrent_uploads": "image uploads decoded at once; one more gets HTTP 429 (retry later)",
    "ws_max_message_bytes": "largest accepted WebSocket message",
    "max_websockets_per_session": "WebSockets open at once per session; one more is refused (HTTP 429)",
    "max_tokens_per_session": "valid tokens per session; issuing one more revokes the oldest",
    "max_talk_queue_s": "seconds of agent audio queued per session; audio beyond it is refused (error queue_full)",
    "max_utterances": "agent utterances queued per session; one more speak_start is refused (error queue_full)",
    "listen_backlog_s": "seconds of user audio kept between steps (the oldest is dropped; live audio is heard, "
                        "not replayed)",
    "max_sdp_bytes": "largest accepted SDP offer",
    "lead_chunks": "at most this many chunks generated ahead of playout (pipeline depth)",
    "lead_margin_s": "start the next chunk when the frames left to send cover the expected generation time "
                     "plus this margin",
    "interrupt_mode": "'drop': an interrupt discards generated frames not yet sent (fastest); 'mute': they "
                      "play out silently (no visual jump)",
    "behind_policy": "when generation is slower than real time late slots repeat the last frame with silence; "
                     "'hold' delays the agent speech, 'drop' skips the speech of late slots to stay on time",
    "prebuffer_s": "agent audio queued before an utterance starts (at least one chunk; unless speak_end came); "
                   "an utterance without speak_start ends after this long without audio",
    "generate_in_thread": "run the generator off the event loop",
    "parallel_generations": "chunks generated at once across sessions (1 = time-sliced on one model)",
    "video_codec": "preferred WebRTC video codec",
    "ice_servers": "comma-separated STUN/TURN URLs handed to clients",
    "ice_addresses": "comma-separated local addresses for ICE host candidates",
    "metrics_interval_s": "seconds between 'metrics' events",
    "log_interval_s": "seconds between per-session log lines (0 = off)",
    "warmup": "generate one chunk at start-up before /readyz turns ready",
}


def config_fields() -> list[dataclasses.Field]:
    """The dataclass fields of :class:`ServeConfig` (one flag each)."""
    return list(fields(ServeConfig))


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    default = f.default
    if value is None:
        return None
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        raise UserInputError(f"{f.name} must be a list or a comma-separated string, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise UserInputError(f"{f.name} must be true or false, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise UserInputError(f"{f.name} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise UserInputError(f"{f.name} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserInputError(f"{f.name} must be a number, got {value!r}") from None
    return str(value)


def load_config(yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Defaults, then the YAML file's keys, then ``overrides`` (flags that were given; None = not given)."""
    known = {f.name: f for f in config_fields()}
    values: dict[str, Any] = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise UserInputError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserInputError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserInputError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserInputError(f"config file {path}: unknown keys {unknown}; known keys: {sorted(known)}")
        values.update({k: _coerce(known[k], v) for k, v in data.items()})
    for k, v in (overrides or {}).items():
        if k not in known:
            raise UserInputError(f"unknown config key {k!r}")
        if v is not None:
            values[k] = _coerce(known[k], v)
    return ServeConfig(**values)



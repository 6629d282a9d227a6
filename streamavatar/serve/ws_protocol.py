"""The session WebSocket protocol: validation of every client message.

Text messages are JSON objects with a ``type``; binary messages are one tag byte (``T`` = agent voice,
``L`` = user voice) followed by little-endian PCM16 mono at the stream's declared sample rate. Anything else
is rejected with a :class:`ProtocolError`, which the server reports as an ``error`` event without closing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamavatar.errors import UserInputError
from streamavatar.serve.audio_in import check_sample_rate, pcm16_from_bytes

TALK_TAG = ord("T")
LISTEN_TAG = ord("L")
STREAMS = {"talk": TALK_TAG, "listen": LISTEN_TAG}
UTTERANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_PING_ID = 2**53

#: Allowed keys per message type (``type`` itself is always allowed).
MESSAGE_KEYS: dict[str, set[str]] = {
    "speak_start": {"utterance_id", "sample_rate"},
    "speak_end": set(),
    "interrupt": set(),
    "start_listening": set(),
    "stop_listening": set(),
    "auto_listening": set(),
    "audio_format": {"stream", "sample_rate"},
    "ping": {"id"},
}


class ProtocolError(Exception):
    """A client message that breaks the protocol; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ControlMessage:
    """A validated JSON control message."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AudioMessage:
    """A validated binary audio message."""

    stream: str
    pcm: np.ndarray


def parse_text(text: str) -> ControlMessage:
    """Validate a JSON control message."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # also integers past Python's 4300-digit limit
        raise ProtocolError("bad_json", "text messages must be JSON objects (integers of at most 4300 digits, "
                            "nesting of at most ~1000 levels)") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in MESSAGE_KEYS:
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:40]!r}; expected one of "
                            f"{sorted(MESSAGE_KEYS)}")
    extra = set(data) - MESSAGE_KEYS[kind] - {"type"}
    if extra:
        raise ProtocolError("bad_message", f"{kind}: unexpected keys {sorted(str(k)[:40] for k in extra)}")
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        if "sample_rate" in fields:
            fields["sample_rate"] = check_sample_rate(fields["sample_rate"])
    except UserInputError as exc:
        raise ProtocolError("bad_sample_rate", str(exc)) from None
    if kind == "speak_start" and "utterance_id" in fields:
        uid = fields["utterance_id"]
        if not isinstance(uid, str) or not UTTERANCE_ID.match(uid):
            raise ProtocolError("bad_message", "utterance_id must be 1-64 characters of letters, digits, _ . : -")
    if kind == "audio_format":
        if not isinstance(fields.get("stream"), str) or fields["stream"] not in STREAMS:  # [] is unhashable
            raise ProtocolError("bad_message", f"audio_format.stream must be 'talk' or 'listen', got "
                                f"{str(fields.get('stream'))[:40]!r}")
        if "sample_rate" not in fields:
            raise ProtocolError("bad_message", "audio_format needs a sample_rate")
    if kind == "ping" and "id" in fields:
        pid = fields["id"]
        if isinstance(pid, bool) or not isinstance(pid, int | str):
            raise ProtocolError("bad_message", "ping.id must be an integer or a string")
        if (isinstance(pid, int) and abs(pid) > MAX_PING_ID) or (isinstance(pid, str) and len(pid) > 64):
            raise ProtocolError("bad_message", "ping.id must be an integer of at most 2**53 or a string of at most "
                                "64 characters")
    return ControlMessage(kind, fields)


def parse_binary(data: bytes) -> AudioMessage:
    """Validate a tagged PCM16 message."""
    if len(data) < 1:
        raise ProtocolError("bad_audio", "empty binary message")
    tag = data[0]
    if tag == TALK_TAG:
        stream = "talk"
    elif tag == LISTEN_TAG:
        stream = "listen"
    else:
        raise ProtocolError("bad_audio", f"binary messages start with b'T' (agent voice) or b'L' (user voice), "
                            f"got byte {tag}")
    try:
        pcm = pcm16_from_bytes(data[1:])
    except UserInputError as exc:
        raise ProtocolError("bad_audio", str(exc)) from None
    return AudioMessage(stream, pcm)


def encode_audio(stream: str, pcm: np.ndarray) -> bytes:
    """Client side: a tagged binary message for ``pcm`` (int16)."""
    return bytes([STREAMS[stream]]) + np.asarray(pcm, "<i2").tobytes()

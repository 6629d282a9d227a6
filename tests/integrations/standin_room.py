"""A stand-in for ``livekit.rtc.Room`` (no server), the way LiveKit tests its own avatars.

It has what ``AvatarRunner``, the user-microphone feed and (with :class:`Hub`) the data-stream avatar I/O
use: events, a connected state, a local participant that "publishes" tracks, remote participants with track
publications, RPC between rooms and byte streams between rooms. Tracks stay real ``rtc`` objects; nothing
goes over a network.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc

_ids = itertools.count()


@dataclass
class LocalPublication:
    track: Any
    options: Any
    sid: str = field(default_factory=lambda: f"TR_local{next(_ids)}")

    @property
    def kind(self) -> int:
        return self.track.kind

    async def wait_for_subscription(self) -> None:
        return None


@dataclass
class RemotePublication:
    """A remote track publication; ``track`` is any object with ``kind`` (e.g. :class:`StandInTrack`)."""

    track: Any
    source: int
    sid: str = field(default_factory=lambda: f"TR_remote{next(_ids)}")
    subscribed: bool = True

    @property
    def kind(self) -> int:
        return self.track.kind


@dataclass
class StandInTrack:
    kind: int = rtc.TrackKind.KIND_AUDIO
    sid: str = field(default_factory=lambda: f"TR_track{next(_ids)}")


class RemoteParticipant:
    def __init__(self, identity: str, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
                 attributes: dict | None = None) -> None:
        self.identity = identity
        self.kind = kind
        self.attributes = dict(attributes or {})
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.track_publications: dict[str, RemotePublication] = {}
        self.sid = f"PA_{identity}"


class ByteStreamInfo:
    def __init__(self, stream_id: str, topic: str, attributes: dict) -> None:
        self.stream_id = stream_id
        self.topic = topic
        self.attributes = attributes


class ByteStreamReader:
    def __init__(self, info: ByteStreamInfo) -> None:
        self.info = info
        self._q: asyncio.Queue[bytes | None] = asyncio.Queue()

    def __aiter__(self) -> ByteStreamReader:
        return self

    async def __anext__(self) -> bytes:
        item = await self._q.get()
        if item is None:
            raise StopAsyncIteration
        return item


class ByteStreamWriter:
    def __init__(self, readers: list[ByteStreamReader]) -> None:
        self._readers = readers

    async def write(self, data: bytes) -> None:
        for r in self._readers:
            r._q.put_nowait(bytes(data))

    async def aclose(self) -> None:
        for r in self._readers:
            r._q.put_nowait(None)


class LocalParticipant:
    def __init__(self, room: StandInRoom, identity: str, kind: int, attributes: dict) -> None:
        self._room = room
        self.identity = identity
        self.kind = kind
        self.attributes = dict(attributes)
        self.sid = f"PA_{identity}"
        self.published: list[LocalPublication] = []
        self.track_publications: dict[str, LocalPublication] = {}
        self._rpc_handlers: dict[str, Any] = {}

    async def publish_track(self, track: Any, options: Any = None) -> LocalPublication:
        pub = LocalPublication(track, options)
        self.published.append(pub)
        self.track_publications[pub.sid] = pub
        if self._room.hub is not None:
            self._room.hub.track_published(self._room, pub)
        return pub

    def register_rpc_method(self, method: str, handler: Any = None):
        if handler is None:
            def deco(fn):
                self._rpc_handlers[method] = fn
                return fn
            return deco
        self._rpc_handlers[method] = handler
        return handler

    async def perform_rpc(self, *, destination_identity: str, method: str, payload: str,
                          response_timeout: float | None = None) -> str:
        if self._room.hub is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, "no hub")
        return await self._room.hub.rpc(self.identity, destination_identity, method, payload)

    async def stream_bytes(self, *, name: str, topic: str, destination_identities: list[str] | None = None,
                           attributes: dict | None = None, **_: Any) -> ByteStreamWriter:
        assert self._room.hub is not None, "byte streams need a Hub"
        return self._room.hub.open_stream(self._room, name, topic, destination_identities or [], attributes or {})


class StandInRoom(rtc.EventEmitter):
    """A connected room seen by one local participant."""

    def __init__(self, identity: str = "agent", *, name: str = "room-1",
                 kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT, attributes: dict | None = None,
                 hub: Hub | None = None) -> None:
        super().__init__()
        self.name = name
        self.hub = hub
        self.local_participant = LocalParticipant(self, identity, kind, attributes or {})
        self.remote_participants: dict[str, RemoteParticipant] = {}
        self._connected = True
        self._byte_handlers: dict[str, Any] = {}

    def isconnected(self) -> bool:
        return self._connected

    @property
    def connection_state(self) -> int:
        return rtc.ConnectionState.CONN_CONNECTED if self._connected else rtc.ConnectionState.CONN_DISCONNECTED

    def add_participant(self, participant: RemoteParticipant) -> None:
        self.remote_participants[participant.identity] = participant
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)

    def remove_participant(self, identity: str) -> None:
        p = self.remote_participants.pop(identity, None)
        if p is not None:
            self.emit("participant_disconnected", p)

    def add_microphone(self, identity: str, track: Any | None = None) -> RemotePublication:
        """A remote participant publishes a microphone and this room subscribes to it."""
        p = self.remote_participants[identity]
        pub = RemotePublication(track or StandInTrack(), rtc.TrackSource.SOURCE_MICROPHONE)
        p.track_publications[pub.sid] = pub
        self.emit("track_published", pub, p)
        self.emit("track_subscribed", pub.track, pub, p)
        return pub

    def register_byte_stream_handler(self, topic: str, handler: Any) -> None:
        self._byte_handlers[topic] = handler

    def unregister_byte_stream_handler(self, topic: str) -> None:
        self._byte_handlers.pop(topic, None)

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self.emit("connection_state_changed", rtc.ConnectionState.CONN_DISCONNECTED)
            self.emit("disconnected", "client_initiated")
            if self.hub is not None:
                self.hub.left(self)


class Hub:
    """Joins stand-in rooms into one room: participants see each other, RPCs and byte streams are routed."""

    def __init__(self) -> None:
        self.rooms: dict[str, StandInRoom] = {}

    def room(self, identity: str, *, kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
             attributes: dict | None = None, name: str = "room-1") -> StandInRoom:
        r = StandInRoom(identity, name=name, kind=kind, attributes=attributes, hub=self)
        for other in self.rooms.values():
            lp = other.local_participant
            r.remote_participants[lp.identity] = RemoteParticipant(lp.identity, lp.kind, lp.attributes)
        self.rooms[identity] = r
        for other in self.rooms.values():
            if other is not r:
                other.add_participant(RemoteParticipant(identity, kind, attributes))
        return r

    def left(self, room: StandInRoom) -> None:
        ident = room.local_participant.identity
        self.rooms.pop(ident, None)
        for other in self.rooms.values():
            other.remove_participant(ident)

    def track_published(self, room: StandInRoom, pub: LocalPublication) -> None:
        ident = room.local_participant.identity
        for other in self.rooms.values():
            if other is room or ident not in other.remote_participants:
                continue
            source = (rtc.TrackSource.SOURCE_CAMERA if pub.track.kind == rtc.TrackKind.KIND_VIDEO
                      else rtc.TrackSource.SOURCE_MICROPHONE)
            rp = RemotePublication(StandInTrack(pub.track.kind), source, sid=pub.sid)
            participant = other.remote_participants[ident]
            participant.track_publications[rp.sid] = rp
            other.emit("track_published", rp, participant)

    async def rpc(self, caller: str, destination: str, method: str, payload: str) -> str:
        target = self.rooms.get(destination)
        if target is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, f"{destination} is not in the room")
        handler = target.local_participant._rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, method)
        data = rtc.RpcInvocationData(request_id=f"rq{next(_ids)}", caller_identity=caller, payload=payload,
                                     response_timeout=10.0)
        out = handler(data)
        if asyncio.iscoroutine(out):
            out = await out
        return out

    def open_stream(self, room: StandInRoom, name: str, topic: str, destinations: list[str],
                    attributes: dict) -> ByteStreamWriter:
        sender = room.local_participant.identity
        readers = []
        for ident in destinations:
            target = self.rooms.get(ident)
            if target is None or topic not in target._byte_handlers:
                continue
            reader = ByteStreamReader(ByteStreamInfo(f"BS_{name}_{next(_ids)}", topic, dict(attributes)))
            readers.append(reader)
            target._byte_handlers[topic](reader, sender)
        return ByteStreamWriter(readers)

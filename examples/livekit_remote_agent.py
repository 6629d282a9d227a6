"""A LiveKit voice agent whose avatar runs on an avatar machine (remote mode), started per room by
``streamavatar livekit-worker`` (the dispatcher) on that machine.

    # avatar machine(s):
    pip install "streamavatar[livekit]"
    streamavatar livekit-worker --host 0.0.0.0 --port 8089 --api-key "$STREAMAVATAR_DISPATCHER_KEY"
    # agent machine(s):
    pip install "streamavatar[livekit]"
    export LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    export AVATAR_DISPATCHER_URL=http://avatar-host:8089 STREAMAVATAR_DISPATCHER_KEY=...
    python examples/livekit_remote_agent.py dev

Several avatar machines: list them in AVATAR_DISPATCHER_URLS (comma-separated); each room tries them in turn
and the first that has room (no 429) takes it. STT / LLM / TTS are placeholders: use any LiveKit plugins.
"""

from __future__ import annotations

import hashlib
import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli, inference

from streamavatar.integrations.livekit import DispatcherError, StreamAvatarSession

DISPATCHERS = [u.strip() for u in os.environ.get("AVATAR_DISPATCHER_URLS",
                                                 os.environ.get("AVATAR_DISPATCHER_URL", "http://127.0.0.1:8089"))
               .split(",") if u.strip()]

server = AgentServer()


async def start_avatar(session: AgentSession, ctx: JobContext) -> StreamAvatarSession:
    """Start this room's avatar on the first dispatcher that accepts it (rooms spread by a hash of the name)."""
    first = int(hashlib.sha1(ctx.room.name.encode()).hexdigest(), 16) % len(DISPATCHERS)
    errors = []
    for url in DISPATCHERS[first:] + DISPATCHERS[:first]:
        avatar = StreamAvatarSession(dispatcher_url=url, avatar_identity=f"avatar-{ctx.room.name}"[:64])
        try:
            await avatar.start(session, room=ctx.room)
            return avatar
        except DispatcherError as exc:
            errors.append(str(exc))
            await avatar.aclose()
    raise RuntimeError("no avatar dispatcher accepted the room: " + "; ".join(errors))


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession(
        stt=inference.STT("deepgram/nova-3"),      # your STT
        llm=inference.LLM("openai/gpt-4.1-mini"),  # your LLM
        tts=inference.TTS("cartesia/sonic-3"),     # your TTS
        resume_false_interruption=False,           # avatars cannot pause, only stop
    )
    avatar = await start_avatar(session, ctx)      # before session.start: it takes over the audio output
    await session.start(agent=Agent(instructions="You are a friendly assistant. Keep answers short."),
                        room=ctx.room)
    await avatar.wait_for_join(timeout=60)         # its video track is up
    await session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)

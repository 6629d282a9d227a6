"""A LiveKit voice agent with a streamavatar avatar in the agent's own process (in-process mode).

    pip install "streamavatar[livekit]"
    export LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python examples/livekit_local_agent.py dev        # then open a room, e.g. in the Agents Playground

The model is loaded once per job process (prewarm) and each room gets its own avatar session. The agent
publishes the avatar's video and its voice re-timed to the video; the user's microphone drives listening.
STT / LLM / TTS: any LiveKit plugins; LiveKit Inference model names are used below as placeholders.
"""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli, inference

import streamavatar as sa
from streamavatar.integrations.livekit import LocalAvatar

REFERENCE_IMAGE = os.environ.get("AVATAR_IMAGE")  # a face image; None = the bundled one
MODEL = os.environ.get("AVATAR_MODEL", "default")  # or a model folder


def prewarm(proc: JobProcess) -> None:
    proc.userdata["avatar_model"] = sa.load(MODEL, warmup=True)


server = AgentServer(setup_fnc=prewarm)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession(
        stt=inference.STT("deepgram/nova-3"),      # your STT
        llm=inference.LLM("openai/gpt-4.1-mini"),  # your LLM
        tts=inference.TTS("cartesia/sonic-3"),     # your TTS
        resume_false_interruption=False,           # avatars cannot pause, only stop
    )
    if REFERENCE_IMAGE:
        image = REFERENCE_IMAGE
    else:
        from streamavatar.streaming.default_assets import bundled_inputs

        image = str(bundled_inputs()[0])
    avatar = LocalAvatar(ctx.proc.userdata["avatar_model"], image, audio_sample_rate=24000)
    await avatar.start(session, ctx.room)  # before session.start: the avatar takes over the audio output
    await session.start(agent=Agent(instructions="You are a friendly assistant. Keep answers short."),
                        room=ctx.room)
    await session.generate_reply(instructions="Greet the user.")


if __name__ == "__main__":
    cli.run_app(server)

"""A pipecat voice agent with a streamavatar avatar, served to a browser over pipecat's SmallWebRTC transport.

    pip install "streamavatar[pipecat]" "pipecat-ai[webrtc,runner]==1.14.0"   # + your STT/LLM/TTS services
    python examples/pipecat_agent.py -t webrtc      # then open http://localhost:7860/client

The avatar sits between the TTS and the output transport: it takes the TTS audio (and the user's audio for
listening), and sends out the video frames plus the speech re-timed to them. Put your STT, LLM (with its
context aggregators) and TTS where the comments say; the rest runs as is.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

import streamavatar as sa
from streamavatar.serve.pipecat_service import StreamAvatarVideoService
from streamavatar.streaming.default_assets import bundled_inputs

MODEL = sa.load(os.environ.get("AVATAR_MODEL", "default"), warmup=True)  # once per process
IMAGE = np.asarray(Image.open(os.environ.get("AVATAR_IMAGE") or bundled_inputs()[0]).convert("RGB"))


def build_services() -> list:
    """Your speech pipeline between the user's audio and the avatar: [stt, user_aggregator, llm, tts].

    For example (pip install "pipecat-ai[deepgram,openai,cartesia]"):
        stt = DeepgramSTTService(api_key=...); llm = OpenAILLMService(api_key=..., model="gpt-4.1-mini")
        context = LLMContext([{"role": "system", "content": "You are a friendly assistant."}])
        pair = LLMContextAggregatorPair(context); tts = CartesiaTTSService(api_key=..., voice_id=...)
        return [stt, pair.user(), llm, tts]   # and put pair.assistant() after transport.output()
    """
    return []


def build_worker(transport: BaseTransport) -> PipelineWorker:
    """transport in → your services → the avatar → transport out."""
    avatar = StreamAvatarVideoService(MODEL, IMAGE)
    pipeline = Pipeline([transport.input(), *build_services(), avatar, transport.output()])
    return PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True))


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint)
    await runner.add_workers(build_worker(transport))
    await runner.run()


async def bot(runner_args: RunnerArguments) -> None:
    h, w = MODEL.frame_size
    transport = await create_transport(runner_args, {
        "webrtc": lambda: TransportParams(audio_in_enabled=True, audio_out_enabled=True, video_out_enabled=True,
                                          video_out_is_live=True, video_out_width=w, video_out_height=h,
                                          video_out_framerate=25),
    })
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()

"""The pipecat example agent (examples/pipecat_agent.py) builds its pipeline with the real pipecat classes.
Skipped without the ``[pipecat]`` extra; CI runs it in that extra's own environment (.ci/extras.sh)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("pipecat", reason='needs the [pipecat] extra: pip install "streamavatar[pipecat]"')


def test_pipecat_example_runs_its_pipeline_with_a_test_transport(monkeypatch):
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.runner.types import RunnerArguments
    from pipecat.transports.base_transport import BaseTransport

    import streamavatar as sa
    from streamavatar.serve.fake_generator import FakeAvatarPipeline

    monkeypatch.setattr(sa, "load", lambda *a, **k: FakeAvatarPipeline(64, 64))
    path = Path(__file__).resolve().parents[2] / "examples" / "pipecat_agent.py"
    spec = importlib.util.spec_from_file_location("pipecat_agent_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    class Transport(BaseTransport):
        def __init__(self):
            super().__init__()
            self._in, self._out = FrameProcessor(), FrameProcessor()

        def input(self):
            return self._in

        def output(self):
            return self._out

    transport = Transport()

    async def main():
        task = module.build_task(transport)
        run = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
        await asyncio.sleep(1.5)
        await task.queue_frame(EndFrame())
        await asyncio.wait_for(run, 30)
        return task

    task = asyncio.run(main())
    assert task.has_finished()
    assert callable(module.run_bot) and RunnerArguments

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
    from pipecat.frames.frames import EndFrame, OutputImageRawFrame
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

    class Sink(FrameProcessor):
        def __init__(self):
            super().__init__()
            self.images = 0

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, OutputImageRawFrame):
                self.images += 1
            await self.push_frame(frame, direction)

    class Transport(BaseTransport):
        def __init__(self):
            super().__init__()
            self._in, self._out = Sink(), Sink()  # pass-through stand-ins for the transport's ends

        def input(self):
            return self._in

        def output(self):
            return self._out

    transport = Transport()

    async def main():
        worker = module.build_worker(transport)
        run = asyncio.create_task(_run(worker))
        await asyncio.sleep(1.5)
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 30)
        return worker

    async def _run(worker):
        from pipecat.workers.runner import WorkerRunner

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    worker = asyncio.run(main())
    assert worker.has_finished()
    assert transport.output().images >= 12  # the avatar's frames reached the output transport
    assert callable(module.run_bot) and RunnerArguments

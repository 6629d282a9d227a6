"""Which avatar pipeline ``--model`` names: the fake test double or a real model through the engine's public API.

Kept apart from :mod:`streamavatar.serve.generator` (the protocol the server relies on), which the fake
pipeline implements: the loader knows both, neither knows the loader.
"""

from __future__ import annotations

from streamavatar.errors import UserInputError
from streamavatar.serve.generator import AvatarPipeline


def load_generator(spec: str, fake_size: int = 256, dtype: str = "auto") -> AvatarPipeline:
    """Load the model named by ``--model``: ``fake`` (the deterministic test double), ``default`` (the model
    bundled with the package) or a model folder, the last two through :func:`streamavatar.load`."""
    if spec == "fake":
        from streamavatar.serve.fake_generator import FakeAvatarPipeline

        return FakeAvatarPipeline(height=fake_size, width=fake_size)
    import streamavatar

    pipe = streamavatar.load(spec, dtype=dtype, warmup=False)  # the server warms it up (pipe.warmup) after
    if not isinstance(pipe, AvatarPipeline):
        raise UserInputError(f"--model {spec}: the loaded model does not provide session(), frame_size and "
                             "sample_rate")
    return pipe

"""streamavatar: streaming diffusion for real-time interactive human avatars (StreamAvatar, arXiv 2512.22065).

``streamavatar.load("default" | DIR)`` returns a streaming pipeline (see :mod:`streamavatar.streaming`); it is
imported on first use so that ``import streamavatar`` and ``streamavatar --help`` stay cheap.
"""

__version__ = "0.1.0"

__all__ = ["load", "__version__"]


def __getattr__(name: str):
    if name == "load":
        from streamavatar.streaming.pipeline import load

        return load
    raise AttributeError(f"module 'streamavatar' has no attribute {name!r}")

"""The real-time streaming engine (see docs/engine.md).

``pipeline`` (``load``, ``Pipeline``: model, projector, VAE, audio front-end) · ``session`` (``Session``, ``Chunk``:
audio in, 12-frame chunks out, interrupt, DiT/VAE overlap; its audio path is
:mod:`streamavatar.audio.streaming`) ·
``model_folder`` (``"default"`` or a student/teacher folder) · ``reference_image`` · ``metrics`` (FFD, RTF) ·
``offline`` (files → mp4) · ``cli`` (``demo``, ``generate``) · ``default_assets`` · ``random_model``.
"""

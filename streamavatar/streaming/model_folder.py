"""Where a streaming model's weights live: ``"default"`` (inside the package) or a run folder.

A model folder holds one of

* ``student.json`` + ``student.safetensors`` — a distilled streaming student (issue #7; ``"kind": "student"``),
* ``teacher.json`` + ``teacher.safetensors`` — a bidirectional teacher run, run block-causally in the
  student's few steps (it was not trained for that: the pipeline's name says "teacher weights, not distilled"),
* ``model.json`` — a small manifest ``{"weights": "relative/or/absolute/folder", ...}`` that points at one of
  the two above (how the package's default model refers to weights kept elsewhere in the repository).

Both weight files use the same schema: ``dit.*`` and ``projector.*`` tensors, and a JSON with ``model``
(:class:`~streamavatar.config.ModelConfig`), ``projector``, ``audio`` and ``train`` sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from streamavatar.errors import UserInputError

#: The package's default model folder.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "default"
MANIFEST = "model.json"
KINDS = ("student", "teacher")


@dataclass(frozen=True)
class ModelFolder:
    """A resolved model: its weight files, kind (student/teacher) and parsed JSON."""

    spec: str
    folder: Path
    kind: str
    config_path: Path
    weights_path: Path
    info: dict
    manifest: dict

    @property
    def distilled(self) -> bool:
        return self.kind == "student"


def _find_weights(folder: Path) -> tuple[str, Path, Path] | None:
    for kind in KINDS:
        cfg, w = folder / f"{kind}.json", folder / f"{kind}.safetensors"
        if cfg.is_file() and w.is_file():
            return kind, cfg, w
    return None


def resolve_model(spec: str | Path = "default") -> ModelFolder:
    """``"default"`` or a folder → :class:`ModelFolder`; anything else is a :class:`UserInputError`."""
    spec_s = str(spec)
    folder = DEFAULT_DIR if spec_s == "default" else Path(spec_s).expanduser()
    if not folder.exists():
        raise UserInputError(f"model {spec_s!r} not found: expected 'default' or a folder with student.json + "
                             "student.safetensors (or teacher.json + teacher.safetensors)")
    if not folder.is_dir():
        raise UserInputError(f"model {spec_s!r} is a file; expected 'default' or a model folder")
    manifest: dict = {}
    found = _find_weights(folder)
    if found is None and (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            target = Path(manifest["weights"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserInputError(f"{folder / MANIFEST} is not a valid model manifest ({exc})") from None
        folder = target if target.is_absolute() else (folder / target).resolve()
        found = _find_weights(folder) if folder.is_dir() else None
        if found is None:
            raise UserInputError(f"model {spec_s!r}: its manifest points at {folder}, which holds no "
                                 "student.json/.safetensors or teacher.json/.safetensors")
    if found is None:
        raise UserInputError(f"{folder} is not a model folder: expected student.json + student.safetensors "
                             "(or teacher.json + teacher.safetensors, or a model.json manifest)")
    kind, cfg, weights = found
    try:
        info = json.loads(cfg.read_text())
        info["model"], info["projector"]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"{cfg} is not a valid model description ({type(exc).__name__}: {exc})") from None
    declared = info.get("kind", kind)
    if declared != kind:
        raise UserInputError(f"{cfg} declares kind {declared!r} but is named {kind}.json")
    return ModelFolder(spec_s, folder, kind, cfg, weights, info, manifest)

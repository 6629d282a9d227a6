"""Which model a name means: ``"default"`` (inside the package) or a model folder.

The folder format and its one reader/writer are :mod:`streamavatar.models.avatar_model`; this module only maps
the name ``"default"`` to the package's bundled model and keeps what was resolved (:class:`ModelFolder`) for the
engine's descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamavatar.models.avatar_model import KINDS, MANIFEST, ModelFiles, find_model_files, read_model_info

__all__ = ["DEFAULT_DIR", "KINDS", "MANIFEST", "ModelFolder", "resolve_model"]

#: The package's default model folder.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "default"


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

    @property
    def files(self) -> ModelFiles:
        return ModelFiles(self.folder, self.kind, self.config_path, self.weights_path, self.manifest)


def resolve_model(spec: str | Path = "default") -> ModelFolder:
    """``"default"`` or a folder → :class:`ModelFolder`; anything else is a :class:`UserInputError`."""
    spec_s = str(spec)
    files = find_model_files(DEFAULT_DIR if spec_s == "default" else Path(spec_s), label=spec_s)
    info = read_model_info(files)
    return ModelFolder(spec_s, files.folder, files.kind, files.config_path, files.weights_path, info,
                       files.manifest)

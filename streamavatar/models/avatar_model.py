"""``AvatarModel``: the one model bundle — DiT + talk/listen audio projectors + their configs — and the one
reader and writer of a model folder (``save_pretrained`` / ``from_pretrained``, the way
:class:`~streamavatar.models.vae.VideoVAE` works).

A model folder holds ``{kind}.json`` + ``{kind}.safetensors`` with ``kind`` = ``student`` (a distilled streaming
student) or ``teacher`` (a bidirectional teacher run), or a ``model.json`` manifest ``{"weights": DIR}`` pointing
at such a folder (how the package's default model can refer to weights kept elsewhere). The weights file holds
``dit.*`` and ``projector.*`` tensors; the JSON holds ``model`` (:class:`~streamavatar.config.ModelConfig`),
``projector`` (:class:`~streamavatar.models.audio_projector.AudioProjectorConfig`) and free sections the
writers add (``audio``, ``train``, ``teacher``, ``resolution``, ``note``…), kept verbatim in :attr:`info`.
This is the format every run since wave 1 wrote, so older folders load unchanged (nothing to migrate).

**A Wan DiT checkpoint plus our audio layers.** When the JSON names ``"dit_checkpoint": PATH`` (a Wan2.x
checkpoint file or directory, original or diffusers names, relative to the folder or absolute), the DiT is
loaded from there first (:func:`~streamavatar.models.checkpoint.load_dit_checkpoint`) and the weights file
then only needs the parts Wan lacks: the talk/listen audio layers (``dit.*`` keys) and the projectors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from streamavatar.config import ModelConfig
from streamavatar.errors import UserInputError
from streamavatar.models.audio_projector import AudioProjectorConfig, TalkListenProjector
from streamavatar.models.checkpoint import is_new_audio_key, load_dit_checkpoint
from streamavatar.models.dit import AvatarDiT

KINDS = ("student", "teacher")
MANIFEST = "model.json"
#: Key prefixes of the two parts in a weights file.
DIT_PREFIX, PROJECTOR_PREFIX = "dit.", "projector."
#: Weights-file key of the fixed prompt's text context (absent: the all-zero prompt).
TEXT_CONTEXT_KEY = "text_context"


@dataclass(frozen=True)
class ModelFiles:
    """Where a model folder's files are: kind, JSON, weights, and the manifest that led there (if any)."""

    folder: Path
    kind: str
    config_path: Path
    weights_path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def distilled(self) -> bool:
        return self.kind == "student"


def _find(folder: Path) -> tuple[str, Path, Path] | None:
    for kind in KINDS:
        cfg, w = folder / f"{kind}.json", folder / f"{kind}.safetensors"
        if cfg.is_file() and w.is_file():
            return kind, cfg, w
    return None


def find_model_files(folder: str | Path, label: str | None = None) -> ModelFiles:
    """The files of a model folder (following a ``model.json`` manifest); a :class:`UserInputError` otherwise.

    ``label`` names the folder in messages (default: the path)."""
    folder = Path(folder).expanduser()
    label = label or str(folder)
    if not folder.exists():
        raise UserInputError(f"model {label!r} not found: expected 'default' or a folder with student.json + "
                             "student.safetensors (or teacher.json + teacher.safetensors)")
    if not folder.is_dir():
        raise UserInputError(f"model {label!r} is a file; expected 'default' or a model folder")
    manifest: dict = {}
    found = _find(folder)
    if found is None and (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            target = Path(manifest["weights"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserInputError(f"{folder / MANIFEST} is not a valid model manifest ({exc})") from None
        folder = target if target.is_absolute() else (folder / target).resolve()
        found = _find(folder) if folder.is_dir() else None
        if found is None:
            raise UserInputError(f"model {label!r}: its manifest points at {folder}, which holds no "
                                 "student.json/.safetensors or teacher.json/.safetensors")
    if found is None:
        raise UserInputError(f"{folder} is not a model folder: expected student.json + student.safetensors "
                             "(or teacher.json + teacher.safetensors, or a model.json manifest)")
    kind, cfg, weights = found
    return ModelFiles(folder, kind, cfg, weights, manifest)


def read_model_info(files: ModelFiles) -> dict:
    """The parsed JSON of a model folder, checked for the ``model`` and ``projector`` sections and its kind."""
    try:
        info = json.loads(files.config_path.read_text())
        info["model"], info["projector"]  # noqa: B018 - presence check
        ModelConfig.from_dict(info["model"])
        AudioProjectorConfig(**info["projector"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserInputError(f"{files.config_path} is not a valid model description "
                             f"({type(exc).__name__}: {exc})") from None
    declared = info.get("kind", files.kind)
    if declared != files.kind:
        raise UserInputError(f"{files.config_path} declares kind {declared!r} but is named {files.kind}.json")
    return info


def _split(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    dit = {k[len(DIT_PREFIX):]: v.float() for k, v in weights.items() if k.startswith(DIT_PREFIX)}
    proj = {k[len(PROJECTOR_PREFIX):]: v.float() for k, v in weights.items() if k.startswith(PROJECTOR_PREFIX)}
    return dit, proj


def _atomic_save_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class AvatarModel(nn.Module):
    """DiT + talk/listen projectors + configs. ``state_dict()`` keys are the weights file's (``dit.*``,
    ``projector.*``); :attr:`info` keeps the folder's other JSON sections (``audio``, ``train``, …)."""

    def __init__(self, config: ModelConfig, projector_config: AudioProjectorConfig, info: dict | None = None,
                 kind: str = "teacher") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.config = config
        self.projector_config = projector_config
        self.kind = kind
        self.info = {k: v for k, v in (info or {}).items() if k not in ("model", "projector")}
        self.dit = AvatarDiT(config.dit)
        self.projector = TalkListenProjector(projector_config)
        #: The fixed prompt's text context ``[1, L, text_dim]`` (weights-file key ``text_context``), or None
        #: for the all-zero prompt (the tiny presets). See :meth:`set_prompt`.
        self.register_buffer("text_context", None)

    def set_prompt(self, umt5_directory: str | Path, prompt: str) -> None:
        """Encode ``prompt`` once with the umT5 encoder in ``umt5_directory`` and keep it as this model's fixed
        text context (saved with the weights; :mod:`~streamavatar.models.text_encoder`)."""
        from streamavatar.models.text_encoder import encode_prompt

        context = encode_prompt(umt5_directory, prompt)
        if context.shape[-1] != self.config.dit.text_dim:
            raise UserInputError(f"the umT5 encoder in {umt5_directory} gives {context.shape[-1]}-wide embeddings "
                                 f"but this DiT's text input is {self.config.dit.text_dim} wide")
        p = self.dit.patch_embedding.weight
        self.text_context = context.to(p.device, p.dtype)
        self.info["prompt"] = {"text": prompt, "encoder": str(umt5_directory), "text_len": context.shape[1]}

    # --- parts ----------------------------------------------------------------------------------------------
    @property
    def distilled(self) -> bool:
        return self.kind == "student"

    def to_info(self) -> dict:
        """The folder's JSON: :attr:`info` with the ``model`` and ``projector`` sections (and ``kind`` for
        students, as distillation always wrote it)."""
        head = {"kind": self.kind} if self.kind == "student" or "kind" in self.info else {}
        return {**head, **self.info, "model": self.config.to_dict(), "projector": asdict(self.projector_config)}

    # --- writing --------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, *, state_dict: dict[str, torch.Tensor] | None = None,
                        dtype: torch.dtype = torch.bfloat16) -> Path:
        """Write ``{kind}.safetensors`` (``dtype``) and ``{kind}.json`` into ``folder``, each atomically.

        ``state_dict`` (weights-file keys) replaces the module's own weights — e.g. EMA averages. With a
        ``dit_checkpoint`` in :attr:`info` only the parts Wan lacks are written (audio layers, projectors)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        if self.info.get("dit_checkpoint"):
            state = {k: v for k, v in state.items()
                     if not k.startswith(DIT_PREFIX) or is_new_audio_key(k[len(DIT_PREFIX):])}
        tensors = {k: v.to(dtype).contiguous() if v.is_floating_point() else v.contiguous()
                   for k, v in state.items()}
        _atomic_save_file(tensors, folder / f"{self.kind}.safetensors")
        _atomic_write_text(json.dumps(self.to_info(), indent=1, default=str), folder / f"{self.kind}.json")
        return folder

    def save_config(self, folder: str | Path) -> Path:
        """Write only ``{kind}.json`` (what a run records before its first checkpoint); returns its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.kind}.json"
        _atomic_write_text(json.dumps(self.to_info(), indent=1, default=str), path)
        return path

    # --- reading --------------------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, files: ModelFiles, dtype: torch.dtype = torch.float32) -> AvatarModel:
        """Load the model of resolved :class:`ModelFiles` (weights in float32, then cast to ``dtype``)."""
        info = read_model_info(files)
        model = cls(ModelConfig.from_dict(info["model"]), AudioProjectorConfig(**info["projector"]), info,
                    kind=files.kind)
        try:
            weights = load_file(str(files.weights_path))
        except Exception as exc:  # noqa: BLE001 - a damaged file is a user problem, one line
            raise UserInputError(f"cannot read model weights {files.weights_path}: {exc}") from None
        dit_state, proj_state = _split(weights)
        try:
            if info.get("dit_checkpoint"):
                ckpt = Path(info["dit_checkpoint"]).expanduser()
                ckpt = ckpt if ckpt.is_absolute() else files.folder / ckpt
                load_dit_checkpoint(model.dit, ckpt, allow_missing_audio=True)
                model.dit.load_state_dict(dit_state, strict=False)
                missing = [k for k in model.dit.state_dict() if is_new_audio_key(k) and k not in dit_state]
                if missing:
                    raise RuntimeError(f"the audio layers are missing, e.g. {missing[:2]}")
            else:
                model.dit.load_state_dict(dit_state)
            model.projector.load_state_dict(proj_state)
            if TEXT_CONTEXT_KEY in weights:
                context = weights[TEXT_CONTEXT_KEY].float()
                width = model.config.dit.text_dim
                if context.ndim != 3 or context.shape[-1] != width:
                    raise RuntimeError(f"text_context {tuple(context.shape)} is not [1, L, {width}]")
                model.text_context = context
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise UserInputError(f"{files.weights_path} does not match {files.config_path}: {first}") from None
        return model.to(dtype).eval()

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> AvatarModel:
        """Load a model folder (see the module docstring); weights read in float32, then cast to ``dtype``."""
        return cls.from_files(find_model_files(folder), dtype)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

"""Stage 1 distillation, shared parts: the run config, loading teacher/student runs, data, export, logging.

The two phases live in their own modules: :mod:`streamavatar.training.ode_init` (regression onto teacher ODE
trajectories) and :mod:`streamavatar.training.sid` + :mod:`streamavatar.training.self_forcing` (Score identity
Distillation over the student's own streaming rollouts). A distilled run folder holds ``student.safetensors``
(bf16 EMA weights, keys ``dit.*`` and ``projector.*``) and ``student.json`` with the same sections as a teacher's
``teacher.json`` (``model``, ``projector``, ``audio``) plus ``kind: "student"``, ``train`` and ``teacher``, so
anything that loads a teacher folder loads a student folder the same way.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from streamavatar import constants as K
from streamavatar.config import DEFAULT_VAE, PRESETS, ModelConfig
from streamavatar.errors import UserInputError
from streamavatar.models.audio_projector import AudioProjectorConfig
from streamavatar.models.avatar_model import DIT_PREFIX, PROJECTOR_PREFIX, AvatarModel, ModelFiles, find_model_files
from streamavatar.models.widen import widen_model
from streamavatar.training.configs import DistillConfig
from streamavatar.training.teacher_sample import run_resolution
from streamavatar.training.trainer import (
    CHECKPOINT,
    LOG,
    Objective,
    Trainer,
    TrainLog,
    open_checkpoint,
    trainer_config,
)

__all__ = ["CHECKPOINT", "LOG", "TrainLog", "DistillConfig", "load_run", "export_student"]

WEIGHTS = "student.safetensors"
CONFIG = "student.json"
TEACHER_WEIGHTS = "teacher.safetensors"
TEACHER_CONFIG = "teacher.json"
#: Keys of a teacher.json "train" section copied into student.json "train".
TEACHER_TRAIN_KEYS = ("vae", "audio_backend", "frames", "prediction")




# --- run folders ------------------------------------------------------------------------------------------
def _run_model_files(run: str | Path) -> ModelFiles:
    run = Path(run)
    if not run.is_dir() or not any((run / f"{k}.json").is_file() for k in ("student", "teacher")):
        raise UserInputError(f"{run} is not a teacher or student run (expected {TEACHER_CONFIG} + {TEACHER_WEIGHTS} "
                             f"or {CONFIG} + {WEIGHTS})")
    return find_model_files(run)


def run_files(run: str | Path) -> tuple[Path, Path]:
    """(config json, weights) of a teacher or student run folder."""
    files = _run_model_files(run)
    return files.config_path, files.weights_path


def load_run(run: str | Path, dtype: torch.dtype = torch.float32):
    """(model, projector, info) of a teacher or student run folder (its exported EMA weights)."""
    files = _run_model_files(run)
    bundle = AvatarModel.from_files(files, dtype)
    info = bundle.to_info()
    if "audio" not in info:
        raise UserInputError(f"{files.config_path} has no 'audio' section")
    return bundle.dit, bundle.projector, info


def load_init_run(run: str | Path, cfg: DistillConfig):
    """:func:`load_run` for ``--init-from``: a run with fewer latent channels than this run's preset (a ``tiny``
    student into ``tiny48``) is widened (``models/widen.py``: old channels copied, new ones silent)."""
    model, projector, info = load_run(run)
    target = PRESETS.get(cfg.preset)
    if target is None or model.cfg.latent_channels >= target.dit.latent_channels:
        return model, projector, info
    wide = widen_model(model, target.dit.latent_channels)
    model_info = {**info["model"], "name": cfg.preset,
                  "dit": {**info["model"]["dit"], "latent_channels": wide.cfg.latent_channels}}
    return wide, projector, {**info, "model": model_info}


def check_teacher(cfg: DistillConfig, info: dict, where: str) -> None:
    """The teacher (or init run) must be of the asked preset and predict x0 or velocity like the student."""
    name = info["model"].get("name")
    if name != cfg.preset:
        raise UserInputError(f"{where} is a {name!r} model, this run distils preset {cfg.preset!r} "
                             f"(pass --preset {name} or another checkpoint)")


def student_model_config(teacher_info: dict, cfg: DistillConfig) -> ModelConfig:
    """The student's ModelConfig: the teacher's network with this run's streaming geometry."""
    mc = ModelConfig.from_dict(teacher_info["model"])
    return replace(mc, stream=cfg.stream(mc.stream))


def open_run(cfg: DistillConfig, resume: bool) -> tuple[DistillConfig, dict | None]:
    """The run's config and checkpoint state: a fresh run refuses an occupied folder; ``--resume`` reuses the
    saved config (only the stopping limits come from the command line)."""
    state = open_checkpoint(cfg.out, resume)
    if state is None:
        return cfg, None
    saved = DistillConfig(**state["config"])
    if saved.phase != cfg.phase:
        raise UserInputError(f"{cfg.out} holds a {saved.phase!r} run, asked to resume phase {cfg.phase!r}")
    return replace(saved, max_minutes=cfg.max_minutes, steps=cfg.steps, grad_accum=cfg.grad_accum,
                   activation_checkpointing=cfg.activation_checkpointing), state


# --- data -------------------------------------------------------------------------------------------------
def check_corpus_audio(data: str | Path, split: str) -> None:
    """Every clip of the split must carry both voices (talk.wav, listen.wav): distillation is audio-driven."""
    root = Path(data)
    lst = root / f"{split}.txt"
    if not (root / "index.json").is_file() or not lst.is_file():
        raise UserInputError(f"{root} is not a corpus folder (expected index.json and {split}.txt: "
                             "streamavatar data synth, data prepare or data mix)")
    clips = [line.strip() for line in lst.read_text().splitlines() if line.strip()]
    if not clips:
        raise UserInputError(f"split {split!r} of {root} has no clips")
    for c in clips:
        missing = [n for n in ("talk.wav", "listen.wav") if not (root / c / n).is_file()]
        if missing:
            raise UserInputError(f"clip {root / c} has no audio ({', '.join(missing)} missing); distillation "
                                 "needs talk and listen audio for every clip")


def load_windows(cfg: DistillConfig, teacher_info: dict, frames: int, progress: bool):
    """Corpus windows of ``1 + frames`` latent frames through the teacher's feature-cache code path.

    The VAE and audio settings are the teacher's, so with the same ``feature_cache`` folder nothing is
    re-encoded."""
    from streamavatar.training.teacher import TeacherTrainConfig, load_training_inputs

    check_corpus_audio(cfg.data, cfg.split)
    tt = teacher_info.get("train", {})
    cache = cfg.feature_cache or tt.get("feature_cache")
    if cache is None or not Path(cache).is_dir():
        cache = str(Path(cfg.out) / "features")
    tcfg = TeacherTrainConfig(data=cfg.data, out=cfg.out, preset=cfg.preset, frames=frames,
                              vae=tt.get("vae", DEFAULT_VAE),
                              audio_backend=tt.get("audio_backend", K.DEFAULT_AUDIO_BACKEND),
                              feature_cache=cache, split=cfg.split, mouth_weight=0.0)
    _, frontend, windows = load_training_inputs(tcfg, cfg.split, progress)
    if frontend.describe() != teacher_info["audio"]:
        raise UserInputError(f"audio settings of the data ({frontend.describe()}) differ from the teacher's "
                             f"({teacher_info['audio']})")
    z = windows.clips[0].latents.shape[0]
    if z != teacher_info["model"]["dit"]["latent_channels"]:
        raise UserInputError(f"the teacher's VAE gives {z} latent channels, its DiT expects "
                             f"{teacher_info['model']['dit']['latent_channels']}")
    return windows


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# --- export -----------------------------------------------------------------------------------------------
def export_student(out: Path, model_shadow: dict, projector_shadow: dict, teacher_info: dict,
                   student_mc: ModelConfig, cfg: DistillConfig, step: int) -> None:
    """Write ``student.safetensors`` (bf16 EMA) and ``student.json`` (teacher.json schema) atomically."""
    # The teacher's data settings (VAE, audio backend, window frames, prediction) stay in "train" so that code
    # reading a teacher folder's train section (e.g. which VAE decodes the latents) reads a student folder alike.
    inherited = {k: v for k, v in teacher_info.get("train", {}).items() if k in TEACHER_TRAIN_KEYS}
    info = {"kind": "student", "train": {**inherited, **asdict(cfg), "step": step}, "audio": teacher_info["audio"],
            "teacher": str(Path(cfg.teacher).resolve()), "resolution": run_resolution(teacher_info)}
    bundle = AvatarModel(student_mc, AudioProjectorConfig(**teacher_info["projector"]), info, kind="student")
    state = {f"{DIT_PREFIX}{k}": v for k, v in model_shadow.items()}
    state.update({f"{PROJECTOR_PREFIX}{k}": v for k, v in projector_shadow.items()})
    bundle.save_pretrained(out, state_dict=state)


# --- the phases' common part ------------------------------------------------------------------------------
class StudentObjective(Objective):
    """What both distillation phases share: the student (``model`` + ``projector``, averaged) and its export
    (:func:`export_student` of the EMA weights after every checkpoint)."""

    def __init__(self, cfg: DistillConfig, out: Path, teacher_info: dict, student_mc: ModelConfig) -> None:
        super().__init__()
        self.cfg, self.out, self.teacher_info, self.student_mc = cfg, Path(out), teacher_info, student_mc
        self.ema_modules = ["model", "projector"]

    def export(self, trainer: Trainer) -> None:
        export_student(self.out, trainer.ema_state("model"), trainer.ema_state("projector"), self.teacher_info,
                       self.student_mc, self.cfg, trainer.step)


def fit_student(objective: StudentObjective, state: dict | None, progress: bool, on_checkpoint,
                started: float) -> dict:
    """Run a distillation objective in its run folder with the run's loop settings; the last logged row."""
    trainer = Trainer(trainer_config(objective.cfg), objective, objective.out, run_config=asdict(objective.cfg),
                      state=state, progress=progress, on_checkpoint=on_checkpoint, started=started)
    return trainer.fit()

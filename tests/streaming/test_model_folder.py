"""Model folders: student, teacher, manifest, and the ways a folder can be wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from streamavatar.errors import UserInputError
from streamavatar.streaming.model_folder import DEFAULT_DIR, resolve_model
from streamavatar.streaming.random_model import write_random_model


def test_student_teacher_and_manifest(tmp_path, small_model_dir):
    from streamavatar.streaming.pipeline import load

    assert resolve_model(small_model_dir).kind == "student"
    teacher = write_random_model(tmp_path / "t", kind="teacher")
    pipe = load(str(teacher), threads=1, warmup=False)
    assert "teacher weights, not distilled" in pipe.name and not pipe.folder.distilled
    m = tmp_path / "m"
    m.mkdir()
    (m / "model.json").write_text(json.dumps({"weights": "../t", "resolution": 32}))
    resolved = resolve_model(m)
    assert resolved.folder == teacher.resolve() and resolved.manifest["resolution"] == 32
    assert load(str(m), threads=1, warmup=False).frame_size == (32, 32)


def test_default_resolves():
    f = resolve_model("default")
    assert f.kind in ("student", "teacher") and f.weights_path.is_file()
    assert (DEFAULT_DIR / "reference.png").is_file() and (DEFAULT_DIR / "speech.wav").is_file()


def test_broken_folders(tmp_path, small_model_dir):
    bad = tmp_path / "bad"
    shutil.copytree(small_model_dir, bad)
    info = json.loads((bad / "student.json").read_text())
    (bad / "student.json").write_text(json.dumps({**info, "kind": "teacher"}))
    with pytest.raises(UserInputError, match="declares kind"):
        resolve_model(bad)
    (bad / "student.json").write_text("{not json")
    with pytest.raises(UserInputError, match="not a valid model description"):
        resolve_model(bad)
    (bad / "student.json").write_text(json.dumps(info))
    (bad / "student.safetensors").write_bytes(b"garbage")
    from streamavatar.streaming.pipeline import load

    with pytest.raises(UserInputError, match="cannot read model weights"):
        load(str(bad), warmup=False)
    m = tmp_path / "m"
    m.mkdir()
    (m / "model.json").write_text(json.dumps({"weights": "../nowhere"}))
    with pytest.raises(UserInputError, match="manifest points at"):
        resolve_model(m)
    with pytest.raises(UserInputError, match="is a file"):
        resolve_model(small_model_dir / "student.json")
    with pytest.raises(UserInputError, match="resolution 40"):
        load(str(small_model_dir), resolution=40, warmup=False)


def test_student_exported_by_distillation_streams(tmp_path):
    """A folder written by the distillation's own exporter (issue #7) loads and streams in the engine."""
    from safetensors.torch import load_file

    from streamavatar.config import ModelConfig
    from streamavatar.streaming.pipeline import load
    from streamavatar.training.distill import DistillConfig, export_student

    teacher = write_random_model(tmp_path / "teacher", kind="teacher")
    info = json.loads((teacher / "teacher.json").read_text())
    w = load_file(str(teacher / "teacher.safetensors"))
    out = tmp_path / "student"
    out.mkdir()
    export_student(out, {k[4:]: v for k, v in w.items() if k.startswith("dit.")},
                   {k[10:]: v for k, v in w.items() if k.startswith("projector.")}, info,
                   ModelConfig.from_dict(info["model"]), DistillConfig(teacher=str(teacher), data="-", out=str(out)),
                   step=1)
    pipe = load(str(out), resolution=64, threads=1, warmup=False)
    assert pipe.folder.kind == "student" and pipe.name.endswith("(distilled student)")
    assert pipe.session(np.zeros((64, 64, 3), np.uint8)).step().frames.shape == (12, 64, 64, 3)


def test_a_wan_dit_checkpoint_plus_our_audio_layers_loads_through_sa_load(tmp_path):
    """A folder whose JSON names a Wan DiT checkpoint (diffusers names, no audio layers) and whose weights hold
    only the audio layers and projectors loads with ``sa.load(DIR)`` and gives the original model's weights."""
    import torch
    from safetensors.torch import save_file

    from streamavatar.models.avatar_model import AvatarModel
    from streamavatar.models.checkpoint import is_new_audio_key, wan_to_diffusers_key
    from streamavatar.streaming.pipeline import load
    from streamavatar.streaming.random_model import random_model

    model = random_model(seed=3)
    wan = tmp_path / "Wan-DiT"
    wan.mkdir()
    base = {wan_to_diffusers_key(k): v.to(torch.bfloat16).contiguous()
            for k, v in model.dit.state_dict().items() if not is_new_audio_key(k)}
    save_file(base, str(wan / "diffusion_pytorch_model.safetensors"))
    model.info["dit_checkpoint"] = "../Wan-DiT"
    folder = model.save_pretrained(tmp_path / "avatar")
    saved = json.loads((folder / "student.json").read_text())
    assert saved["dit_checkpoint"] == "../Wan-DiT"
    from safetensors.torch import load_file

    keys = set(load_file(str(folder / "student.safetensors")))
    assert keys and all(k.startswith("projector.") or is_new_audio_key(k[4:]) for k in keys)
    loaded = AvatarModel.from_pretrained(folder)
    want = {k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()}
    got = loaded.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    pipe = load(str(folder), threads=1, warmup=False)
    assert pipe.session(np.zeros((64, 64, 3), np.uint8)).step().frames.shape == (12, 64, 64, 3)


def test_weights_missing_a_part_are_a_one_line_error(tmp_path):
    from safetensors.torch import load_file, save_file

    from streamavatar.models.avatar_model import AvatarModel
    from streamavatar.streaming.random_model import random_model

    folder = random_model().save_pretrained(tmp_path / "m")
    weights = folder / "student.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if not k.startswith("projector.")}, str(weights))
    with pytest.raises(UserInputError, match="does not match"):
        AvatarModel.from_pretrained(folder)

"""Write the legacy run fixtures with the code of commit 8d0d95e (before the one-house refactor, issue #17).

Run it against that tree, e.g.::

    git worktree add /tmp/before 8d0d95e
    PYTHONPATH=/tmp/before python tests/training/legacy_runs/make_legacy_runs.py /tmp/legacy_build

It builds a 3-clip corpus and a random ``tiny`` VAE (both re-made by the test with the same seeds), trains a
teacher (preset ``test-small``, registered for the run: a 64-wide, 2-layer DiT so that the fixture stays
small) for 3 steps, an ODE run from it for 3 steps and a SiD run from the ODE run for 2 steps, all through the
old ``train_*`` functions, and copies the three run folders (checkpoint, exported weights, JSON, CSV log; not
the feature or trajectory caches) next to this script with ``paths.json`` naming the build folder, so that the
test can relocate the absolute paths the runs recorded.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRESET = "test-small"
#: Hidden width of the audio projectors of the fixture runs (the default 512 would make the files ~25 MB).
PROJECTOR_HIDDEN = 16
RUNS = ("teacher", "ode", "sid")
KEEP = ("checkpoint.pt", "teacher.json", "teacher.safetensors", "student.json", "student.safetensors",
        "train_log.csv")


def small_preset():
    from streamavatar.config import DiTConfig, ModelConfig

    dit = DiTConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, latent_channels=16, text_dim=16, freq_dim=32,
                    audio_dim=16, audio_tokens_per_frame=2, reference_concat=True, mask_channels=1,
                    audio_modulation=True, prediction="x0")
    return ModelConfig(name=PRESET, dit=dit)


def register_small_model():
    """Register preset ``test-small`` and make new projectors :data:`PROJECTOR_HIDDEN` wide (what the fixture
    runs were trained with; a teacher run rebuilds its projector from these defaults when it resumes).

    Returns a function that undoes both."""
    from streamavatar.config import PRESETS
    from streamavatar.models.audio_projector import AudioProjectorConfig

    PRESETS[PRESET] = small_preset()
    original = AudioProjectorConfig.__dict__["for_dit"]

    def for_dit(dit, window, num_layers, feature_dim, hidden_dim=PROJECTOR_HIDDEN, layer_mode="weighted"):
        return original.__func__(dit, window, num_layers, feature_dim, hidden_dim, layer_mode)

    AudioProjectorConfig.for_dit = staticmethod(for_dit)

    def undo() -> None:
        PRESETS.pop(PRESET, None)
        AudioProjectorConfig.for_dit = original

    return undo


def build_inputs(root: Path) -> tuple[Path, Path, str]:
    """The corpus and the random VAE the runs use (the test calls this too)."""
    import torch

    from streamavatar.data.synthetic import SynthConfig, build_corpus
    from streamavatar.models.vae import VideoVAE, vae_preset

    corpus = root / "corpus"
    if not (corpus / "index.json").is_file():
        build_corpus(corpus, SynthConfig(clips=3, seconds=2.5, seed=5, clips_per_identity=1, workers=1),
                     progress=False)
    split = next(s for s in ("train", "val", "test") if (corpus / f"{s}.txt").read_text().strip())
    vae = root / "vae"
    if not vae.is_dir():
        torch.manual_seed(0)
        VideoVAE(vae_preset("tiny")).save_pretrained(vae)
    return corpus, vae, split


def main(root: Path) -> None:
    import torch

    from streamavatar.training.distill import DistillConfig
    from streamavatar.training.ode_init import train_ode
    from streamavatar.training.sid_train import train_sid
    from streamavatar.training.teacher import TeacherTrainConfig, train_teacher

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    register_small_model()
    corpus, vae, split = build_inputs(root)
    features = root / "features"
    train_teacher(TeacherTrainConfig(data=str(corpus), out=str(root / "teacher"), preset=PRESET, frames=9, batch=1,
                                     lr=1e-3, vae=str(vae), audio_backend="mel", split=split, checkpoint_every=2,
                                     steps=3, feature_cache=str(features)), progress=False)
    common = dict(teacher=str(root / "teacher"), data=str(corpus), preset=PRESET, split=split, batch=1, pairs=2,
                  pair_batch=2, teacher_steps=3, feature_cache=str(features), lr=1e-3, fake_updates=1)
    train_ode(DistillConfig(out=str(root / "ode"), steps=3, checkpoint_every=2, **common), progress=False)
    train_sid(DistillConfig(out=str(root / "sid"), phase="sid", init_from=str(root / "ode"), steps=2,
                            checkpoint_every=1, **common), progress=False)
    for run in RUNS:
        dst = HERE / run
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir()
        for name in KEEP:
            if (root / run / name).is_file():
                shutil.copy2(root / run / name, dst / name)
    # What the old code logs when it resumes each run (distillation first: resuming the teacher re-exports it).
    cont = {}
    train_ode(DistillConfig(out=str(root / "ode"), steps=5, checkpoint_every=2, **common), resume=True,
              progress=False)
    train_sid(DistillConfig(out=str(root / "sid"), phase="sid", steps=3, checkpoint_every=1, **common), resume=True,
              progress=False)
    train_teacher(TeacherTrainConfig(data=str(corpus), out=str(root / "teacher"), preset=PRESET, steps=5),
                  resume=True, progress=False)
    for run in RUNS:
        new_rows = (root / run / "train_log.csv").read_text().splitlines()
        old_rows = (dst_rows := (HERE / run / "train_log.csv").read_text().splitlines())
        cont[run] = {"header": new_rows[0], "rows": new_rows[len(dst_rows):]}
        assert new_rows[:len(old_rows)] == old_rows
    (HERE / "paths.json").write_text(json.dumps({"root": str(root.resolve()), "commit": "8d0d95e",
                                                 "corpus_digest": corpus_digest(corpus), "continuation": cont},
                                                indent=1))
    print(f"wrote {', '.join(RUNS)} into {HERE}")


def corpus_digest(corpus: Path) -> str:
    """SHA-256 over the corpus's media files (the exact-continuation check needs the same data)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(corpus.rglob("*")):
        if p.is_file() and p.suffix in (".wav", ".mp4", ".npz"):
            h.update(p.relative_to(corpus).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""``streamavatar train vae`` / ``eval vae`` as a user calls them (subprocess), on a tiny generated corpus."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        s.options = {"crf": "10"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two train clips and one test clip of a moving disc, 32x32, in the corpus layout."""
    root = tmp_path_factory.mktemp("corpus")
    yy, xx = np.mgrid[0:32, 0:32]
    for i, split in enumerate(["train", "train", "val", "test"]):
        frames = []
        for t in range(13):
            cx, cy = 10 + t * 0.7 + i, 16 + 3 * np.sin(t / 3 + i)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 36)[..., None]
            bg = np.stack([xx * 6, yy * 6, np.full_like(xx, 60 + 40 * i)], -1)
            frames.append(np.where(disc, np.array([230, 200, 40]), bg).astype(np.uint8))
        _write_mp4(root / f"clips/clip_{i:05d}/video.mp4", np.stack(frames))
        with (root / f"{split}.txt").open("a") as f:
            f.write(f"clips/clip_{i:05d}\n")
    return root


def test_train_resume_and_eval(corpus, tmp_path):
    run = tmp_path / "run"
    base = ["train", "vae", "--data", str(corpus), "--out", str(run), "--batch", "1", "--frames", "5",
            "--eval-clips", "1", "--threads", "1"]
    r = run_cli(*base, "--max-steps", "2")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["steps"] == 2
    assert (run / "checkpoint.pt").is_file() and (run / "vae" / "model.safetensors").is_file()
    rows = list(csv.DictReader((run / "train.csv").open()))
    assert [int(x["step"]) for x in rows] == [1]
    # a second start without --resume must refuse to overwrite the run
    r = run_cli(*base, "--max-steps", "3")
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(*base, "--max-steps", "3", "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 3
    cfg = json.loads((run / "vae" / "config.json").read_text())
    assert cfg["name"] == "tiny48" and len(cfg["latents_std"]) == 48  # the default preset

    r = run_cli("eval", "vae", "--data", str(corpus), "--model", str(run / "vae"), "--split", "test",
                "--threads", "1")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["clips"] == 1 and ev["split"] == "test" and np.isfinite(ev["psnr_db"]) and -1 <= ev["ssim"] <= 1


def test_a_checkpoint_in_the_pre_trainer_layout_resumes(corpus, tmp_path):
    """VAE runs written before the one Trainer (commit 8d0d95e: keys model/opt/disc/disc_opt/np_rng/torch_rng,
    no "rng") resume: the checkpoint is rewritten in that layout, then continued."""
    import torch

    run = tmp_path / "run"
    base = ["train", "vae", "--data", str(corpus), "--out", str(run), "--batch", "1", "--frames", "5",
            "--eval-clips", "1", "--threads", "1"]
    assert run_cli(*base, "--max-steps", "2").returncode == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    legacy = {"model": state["model"], "opt": state["opt"], "disc": None, "disc_opt": None, "step": state["step"],
              "elapsed_s": state["elapsed_s"], "np_rng": state["np_rng"], "torch_rng": state["rng"]["torch"],
              "config": state["config"], "vae_config": state["vae_config"], "last_eval": state["last_eval"]}
    torch.save(legacy, run / "checkpoint.pt")
    r = run_cli(*base, "--max-steps", "3", "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 3
    resumed = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert resumed["step"] == 3 and "rng" in resumed


@pytest.mark.parametrize("args,needle", [
    (["--frames", "8"], "1 + 4k"),
    (["--minutes", "0"], "positive"),
    (["--resume"], "no checkpoint.pt"),
])
def test_train_bad_input_is_one_line_exit_2(corpus, tmp_path, args, needle, capsys):
    """In-process through ``cli.main`` (the same path the console script takes; the subprocess case is below)."""
    from streamavatar.cli import main

    try:
        code = main(["train", "vae", "--data", str(corpus), "--out", str(tmp_path / "r"), *args])
    except SystemExit as exc:  # argparse rejects flags by exiting
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_train_missing_data_dir(tmp_path):
    r = run_cli("train", "vae", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "--data" in r.stderr and "Traceback" not in r.stderr


def test_train_tiny_preset(corpus, tmp_path):
    run = tmp_path / "run16"
    r = run_cli("train", "vae", "--preset", "tiny", "--data", str(corpus), "--out", str(run), "--batch", "1",
                "--frames", "5", "--eval-clips", "1", "--threads", "1", "--max-steps", "1")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((run / "vae" / "config.json").read_text())
    assert cfg["name"] == "tiny" and cfg["latent_channels"] == 16 and len(cfg["latents_std"]) == 16

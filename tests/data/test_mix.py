"""data mix: weighted mixtures of corpus folders read through the trainers' one path."""

from __future__ import annotations

import json

import pytest

from streamavatar.data.dataset import AvatarClipDataset
from streamavatar.data.mix import build_mixture, parse_source, repeats_for
from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.errors import UserInputError


def test_repeats_match_the_weights():
    assert repeats_for([1, 1], [100, 100]) == [1, 1]
    r = repeats_for([3, 1], [100, 100])
    assert r[0] / r[1] == 3
    r = repeats_for([1, 1], [50, 200])   # the small source is repeated to reach half the windows
    assert r == [4, 1]
    with pytest.raises(UserInputError):
        repeats_for([1, 1], [0, 10])


def test_parse_source(tmp_path):
    assert parse_source(f"{tmp_path}:2.5") == (tmp_path, 2.5)
    assert parse_source(str(tmp_path)) == (tmp_path, 1.0)
    with pytest.raises(UserInputError):
        parse_source(f"{tmp_path}:0")


def test_mixture_folder_lists_weighted_clips_and_loads(tmp_path, tiny_corpus):
    a, _ = tiny_corpus
    b = tmp_path / "b"
    build_corpus(b, SynthConfig(clips=2, seconds=2.0, seed=8, clips_per_identity=1, workers=1), progress=False)
    for src in (a, b):  # make every clip a training clip so the weights act on both sources
        index = json.loads((src / "index.json").read_text())
        if all(c["split"] == "train" for c in index["clips"]):
            continue
        for c in index["clips"]:
            c["split"] = "train"
        (src / "index.json").write_text(json.dumps(index))
        (src / "train.txt").write_text("".join(f"{c['path']}\n" for c in index["clips"]))
    out = tmp_path / "mix"
    summary = build_mixture([(a, 3.0), (b, 1.0)], out)
    shares = [s["share"] for s in summary["sources"]]
    assert shares == pytest.approx([0.75, 0.25], abs=0.01)
    lines = (out / "train.txt").read_text().split()
    assert len(lines) == 2 * 3 + 2 * 1 and len(set(lines)) == 4
    for line in set(lines):
        assert (out / line / "video.mp4").is_file() and (out / line / "annotations.npz").is_file()
    ds = AvatarClipDataset(out, split="train", frames=17, verbose=False)
    assert ds.kind == "mixture" and len(ds.sources) == 4 and ds.has_annotations
    assert len({s.identity.split("/")[0] for s in ds.sources}) == 2
    with pytest.raises(UserInputError, match="not empty"):
        build_mixture([(a, 1.0)], out)
    with pytest.raises(UserInputError, match="not a corpus"):
        build_mixture([(tmp_path / "nothing", 1.0)], tmp_path / "mix2")


def test_a_clip_listed_twice_is_loaded_once(tmp_path, tiny_corpus):
    import torch

    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.models.vae import VideoVAE, vae_preset
    from streamavatar.training.teacher_data import build_feature_cache

    corpus, index = tiny_corpus
    mix = tmp_path / "m"
    build_mixture([(corpus, 1.0)], mix)
    first = (mix / "train.txt").read_text().split()[0] if (mix / "train.txt").read_text().strip() else None
    split = "train" if first else next(s for s in ("val", "test") if (mix / f"{s}.txt").read_text().strip())
    line = (mix / f"{split}.txt").read_text().split()[0]
    (mix / f"{split}.txt").write_text(f"{line}\n{line}\n")
    torch.manual_seed(0)
    vae = VideoVAE(vae_preset("tiny")).eval()
    feats = build_feature_cache(mix, split, vae, AudioFrontend(AudioConfig(backend="mel")), tmp_path / "cache",
                                progress=False)
    assert len(feats) == 2 and feats[0] is feats[1]

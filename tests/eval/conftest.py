"""Shared fixtures: a two-clip, 2-second corpus made with the corpus code (one identity: one talking clip, one
listening clip with seed 5), and the shipped judge and sync model."""

from __future__ import annotations

import pytest

from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.eval.corpus_clip import load_corpus_clip
from streamavatar.eval.judge import load_judge
from streamavatar.eval.syncnet import load_syncnet


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root, SynthConfig(clips=2, seconds=2.0, seed=5, workers=1), progress=False)
    return root


@pytest.fixture(scope="session")
def talk_clip(tiny_corpus):
    clip = load_corpus_clip(tiny_corpus, "clip_00000")
    assert clip.annotations["talk_mask"].sum() > 20, "seed 5 clip 0 is expected to talk"
    return clip


@pytest.fixture(scope="session")
def listen_clip(tiny_corpus):
    clip = load_corpus_clip(tiny_corpus, "clip_00001")
    assert (clip.annotations["state"] == 2).sum() > 20, "seed 5 clip 1 is expected to listen"
    return clip


@pytest.fixture(scope="session")
def judge():
    return load_judge()


@pytest.fixture(scope="session")
def syncnet():
    return load_syncnet()

"""Shared tiny data for the data tests: one controlled conversation and a two-clip corpus."""

from __future__ import annotations

import numpy as np
import pytest

from streamavatar.data.conversation import Conversation, Utterance
from streamavatar.data.speech import SAMPLE_RATE, Voice, synthesize
from streamavatar.data.synthetic import SynthConfig, build_corpus

AGENT = Voice("en-us", "m3", 170, 50)
USER = Voice("en-gb", "f2", 160, 60)


@pytest.fixture(scope="session")
def conversation() -> Conversation:
    """6 s: the agent speaks from 0.2 s, then the user says two sentences with a pause between them."""
    n = 6 * SAMPLE_RATE
    agent, user = np.zeros(n, np.float32), np.zeros(n, np.float32)
    utts = []
    a = synthesize("We really like the little red house.", AGENT)[: int(2.2 * SAMPLE_RATE)]
    s = int(0.2 * SAMPLE_RATE)
    agent[s:s + len(a)] = a
    utts.append(Utterance("agent", 0, 0.2, (s + len(a)) / SAMPLE_RATE, "We really like the little red house."))
    t = (s + len(a)) / SAMPLE_RATE + 0.3
    for text in ("Yes, exactly.", "That sounds great."):
        u = synthesize(text, USER)
        k = int(t * SAMPLE_RATE)
        u = u[: n - k]
        user[k:k + len(u)] = u
        utts.append(Utterance("user", 1, k / SAMPLE_RATE, (k + len(u)) / SAMPLE_RATE, text))
        t = (k + len(u)) / SAMPLE_RATE + 0.7
    return Conversation(agent, user, utts)


@pytest.fixture(scope="session")
def tiny_cfg() -> SynthConfig:
    return SynthConfig(clips=2, seconds=2.0, seed=7, clips_per_identity=1, workers=1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_cfg):
    out = tmp_path_factory.mktemp("corpus")
    index = build_corpus(out, tiny_cfg, progress=False)
    return out, index

"""Behaviour from audio: lip motion follows the agent's energy, nods only while listening, determinism."""

from __future__ import annotations

import numpy as np

from streamavatar.data.behaviour import LISTENING, TALKING, compute_behaviour, frame_masks, short_time_energy
from streamavatar.data.speech import SAMPLE_RATE

FPS = 25


def _behaviour(conv, seed=0):
    return compute_behaviour(conv, FPS, 150, np.random.default_rng(seed)).arrays


def test_mouth_follows_agent_energy(conversation):
    a = _behaviour(conversation)
    energy = short_time_energy(conversation.agent, SAMPLE_RATE, FPS, 150)
    assert np.corrcoef(energy, a["mouth_open"])[0, 1] >= 0.8
    # silent agent (no agent sound within +-2 frames) -> mouth closed
    silent = np.convolve(energy > 0, np.ones(5), mode="same") == 0
    assert silent.sum() > 40
    assert a["mouth_open"][silent].max() < 0.02
    assert a["mouth_open"].max() > 0.6


def test_masks_and_states(conversation):
    talk, listen, state = frame_masks(conversation, FPS, 150)
    assert talk[10] and not listen[10] and state[10] == TALKING
    user_start = next(u for u in conversation.utterances if u.speaker == "user").start_s
    f = int(user_start * FPS) + 3
    assert listen[f] and state[f] == LISTENING


def test_nods_only_while_listening(conversation):
    a = _behaviour(conversation)
    assert (a["nod"] > 0).any(), "the user's pause between sentences should draw a nod"
    assert np.all(a["state"][a["nod"] > 0] == LISTENING)
    # nods show up in head pitch; arms gesture only while talking
    assert a["head_pitch"][a["nod"] > 0.5].mean() > a["head_pitch"][a["state"] != LISTENING].mean()


def test_behaviour_is_deterministic(conversation):
    a, b, c = _behaviour(conversation, 3), _behaviour(conversation, 3), _behaviour(conversation, 4)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["blink"], c["blink"])
    assert np.array_equal(a["mouth_open"], c["mouth_open"])  # lips depend on audio only

"""Active-speaker detection on controlled mouth/voice series (no face tracker needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamavatar.data.speaker_attribution import (
    attribute_speakers,
    attribution_accuracy,
    classify_segment,
    load_override,
    voiced_segments,
)
from streamavatar.errors import UserInputError


def test_voiced_segments_merge_short_gaps_and_drop_blips():
    v = np.zeros(60, bool)
    v[5:15] = True
    v[17:25] = True      # gap of 2 < 5: same segment
    v[40:42] = True      # 2 frames < 3: dropped
    v[50:58] = True
    assert voiced_segments(v) == [(5, 25), (50, 58)]


def _series(seed: int = 0):
    """10 s: avatar speaks 1-4 s (mouth follows its voice), partner 5-8 s (mouth still)."""
    rng = np.random.default_rng(seed)
    n = 250
    audio = np.zeros(n * 640, np.float32)
    ratio = np.full(n, 0.01) + rng.normal(0, 0.001, n)
    env = np.zeros(n)
    for a, b, who in ((25, 100, "avatar"), (125, 200, "partner")):
        e = 0.3 + 0.7 * np.abs(np.sin(np.arange(b - a) * 0.7))
        env[a:b] = e
        t = np.arange((b - a) * 640) / 16000
        audio[a * 640:b * 640] = (0.3 * np.repeat(e, 640) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        if who == "avatar":
            ratio[a:b] += 0.08 * e
    truth_talk = np.zeros(n, bool)
    truth_talk[25:100] = True
    truth_listen = np.zeros(n, bool)
    truth_listen[125:200] = True
    return audio, ratio, truth_talk, truth_listen


def test_moving_mouth_is_the_avatar_still_mouth_is_the_partner():
    audio, ratio, tt, tl = _series()
    att = attribute_speakers(audio, ratio, np.ones(len(ratio), bool))
    acc = attribution_accuracy(att.talk_mask, att.listen_mask, tt, tl)
    assert acc["accuracy"] > 0.95 and acc["avatar_recall"] > 0.95 and acc["partner_recall"] > 0.95
    speakers = [s.speaker for s in att.segments]
    assert speakers == ["avatar", "partner"]
    assert all(s.confidence > 0.5 for s in att.segments)
    json.dumps(att.to_json())


def test_untracked_face_gives_zero_confidence():
    audio, ratio, _, _ = _series()
    att = attribute_speakers(audio, ratio, np.zeros(len(ratio), bool))
    assert all(s.speaker == "partner" and s.confidence == 0 for s in att.segments)


def test_classify_segment_cues():
    e = np.abs(np.sin(np.arange(50) * 0.5))
    p_move, motion, coupling = classify_segment(0.01 + 0.06 * e, np.ones(50, bool), e)
    p_still, _, _ = classify_segment(np.full(50, 0.01), np.ones(50, bool), e)
    assert p_move > 0.9 and motion > 0.01 and coupling > 0.9
    assert p_still < 0.1


def test_override_file_wins(tmp_path):
    audio, ratio, tt, tl = _series()
    f = tmp_path / "x.speakers.json"
    f.write_text(json.dumps({"segments": [{"start_s": 1.0, "end_s": 4.0, "speaker": "partner"}]}))
    att = attribute_speakers(audio, ratio, np.ones(len(ratio), bool), load_override(f, 25))
    assert att.listen_mask[25:100].all() and not att.talk_mask[25:100].any()
    assert (att.confidence[25:100] == 1).all()
    assert any(s.source == "override" for s in att.segments)
    f.write_text(json.dumps({"segments": [{"start_s": 1.0, "end_s": 4.0, "speaker": "nobody"}]}))
    with pytest.raises(UserInputError, match="speaker must be one of"):
        load_override(f, 25)
    f.write_text("{not json")
    with pytest.raises(UserInputError, match="bad speaker override"):
        load_override(f, 25)


def test_a_turn_change_without_a_pause_splits_the_run():
    audio, ratio, tt, tl = _series()
    # move the partner's turn right after the avatar's: one voiced run 25..175
    audio2 = np.zeros_like(audio)
    audio2[25 * 640:100 * 640] = audio[25 * 640:100 * 640]
    audio2[100 * 640:175 * 640] = audio[125 * 640:200 * 640]
    ratio2 = ratio.copy()
    ratio2[100:175] = ratio[125:200]
    ratio2[175:] = 0.01
    att = attribute_speakers(audio2, ratio2, np.ones(len(ratio2), bool))
    truth_listen = np.zeros(len(ratio2), bool)
    truth_listen[100:175] = True
    acc = attribution_accuracy(att.talk_mask, att.listen_mask, tt, truth_listen)
    assert [s.speaker for s in att.segments] == ["avatar", "partner"]
    assert acc["accuracy"] > 0.9, acc

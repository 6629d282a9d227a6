"""The acceptance sanity checks of issue #9 on tiny corpus clips."""

import numpy as np

from streamavatar.eval.evaluation import evaluate_clip, summarise


def test_ground_truth_against_itself_scores_perfectly(talk_clip, judge, syncnet):
    gt = talk_clip.frames()
    ev = evaluate_clip(talk_clip, gt, judge, syncnet, gt)
    m = ev.metrics
    assert m["lip_sync"]["vs_ground_truth_video"]["r"] == 1.0
    assert m["lip_sync"]["vs_ground_truth_video"]["mae"] == 0.0
    assert abs(m["lip_sync"]["syncnet"]["offset"]) <= 1
    assert m["listening"]["generated"] == m["listening"]["ground_truth"]
    assert m["drift"]["background_error"]["mean"] < 2.0
    s = summarise([ev], None, None)
    assert s["fid_proxy"] < 1e-3
    assert s["fvd_proxy"] < 1e-3
    assert abs(s["identity_distance"] - s["identity_distance_ground_truth"]) < 1e-6


def test_shuffled_audio_gives_low_sync(talk_clip, judge, syncnet):
    gt = talk_clip.frames()
    true = evaluate_clip(talk_clip, gt, judge, syncnet, gt).metrics["lip_sync"]
    # the same frames in a random order: the mouth no longer follows the audio
    perm = np.random.default_rng(0).permutation(len(gt))
    shuffled = evaluate_clip(talk_clip, gt[perm], judge, syncnet, gt).metrics["lip_sync"]
    assert abs(shuffled["vs_ground_truth_video"]["r"]) < 0.5
    assert shuffled["syncnet"]["confidence"] < true["syncnet"]["confidence"]
    assert shuffled["syncnet"]["distance_at_zero"] > true["syncnet"]["distance_at_zero"]


def test_frozen_frame_gives_zero_listening_motion(listen_clip, judge, syncnet):
    gt = listen_clip.frames()
    frozen = np.repeat(gt[:1], len(gt), axis=0)
    m = evaluate_clip(listen_clip, frozen, judge, syncnet, gt).metrics["listening"]
    assert m["generated"]["frames"] > 20
    assert m["generated"]["head_var_deg2"] < 1e-6
    assert m["generated"]["arm_var_deg2"] < 1e-6
    assert m["ground_truth"]["head_var_deg2"] > 0.1


def test_colour_drift_gives_positive_slope(listen_clip, judge, syncnet):
    gt = listen_clip.frames()
    ramp = np.linspace(0, 40, len(gt))[:, None, None, None]
    drifted = np.clip(gt.astype(np.float32) + ramp * np.array([1.0, -0.5, 0.5]), 0, 255).astype(np.uint8)
    d = evaluate_clip(listen_clip, drifted, judge, syncnet, gt).metrics["drift"]["background_error"]
    base = evaluate_clip(listen_clip, gt, judge, syncnet, gt).metrics["drift"]["background_error"]
    assert d["slope_per_minute"] > 100.0  # ~27 grey levels over 2 s = ~800 per minute
    assert abs(base["slope_per_minute"]) < 0.1 * d["slope_per_minute"]
    assert d["last_second"] > d["first_second"]

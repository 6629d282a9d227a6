"""The judge and sync model train, save and load (seconds-long runs on the tiny corpus)."""

import numpy as np
import torch

from streamavatar.eval.judge import REGRESSION_TARGETS, load_judge, run_judge, save_judge
from streamavatar.eval.syncnet import load_syncnet, save_syncnet
from streamavatar.training.judge import JudgeTrainConfig, evaluate_judge, load_frame_set, train_judge
from streamavatar.training.sync import SyncTrainConfig, evaluate_syncnet, load_sync_set, train_syncnet


def test_judge_trains_saves_and_loads(tiny_corpus, tmp_path):
    data = load_frame_set(tiny_corpus, "train", stride=4, progress=False)
    model, log = train_judge(tiny_corpus, JudgeTrainConfig(minutes=0.03, batch=8), progress=False, train_data=data)
    assert log["steps"] > 0
    report = evaluate_judge(model, data)
    assert set(report["targets"]) == set(REGRESSION_TARGETS)
    save_judge(model, tmp_path, report)
    loaded = load_judge(tmp_path)
    a = run_judge(model, data.frames[:4])
    b = run_judge(loaded, data.frames[:4])
    # bf16 storage: close, not equal
    np.testing.assert_allclose(a.params["head_yaw"], b.params["head_yaw"], atol=0.05)


def test_sync_model_trains_saves_and_loads(tiny_corpus, tmp_path):
    data = load_sync_set(tiny_corpus, "train", progress=False)
    model, log = train_syncnet(data, SyncTrainConfig(minutes=0.02, batch=8, shifted_negatives=2), progress=False)
    assert log["steps"] > 0
    report = evaluate_syncnet(model, data)
    assert report["clips"] == 2
    save_syncnet(model, tmp_path, report)
    loaded = load_syncnet(tmp_path)
    x = torch.zeros(1, 20, 40)
    assert torch.allclose(model.embed_audio(x), loaded.embed_audio(x), atol=0.05)

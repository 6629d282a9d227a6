"""The training log stays one consistent CSV when a run is resumed by code that logs another set of columns."""

from __future__ import annotations

import csv

from streamavatar.training.trainer import TrainLog


def test_resume_with_a_new_column_rewrites_the_header_and_keeps_old_values(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("step,minutes,loss\n1,0.1,0.5\n2,0.2,0.4\n3,0.3,0.3\n")
    log = TrainLog(path, ["step", "minutes", "loss", "seam_l1"], total=None, initial=2, desc="t", progress=False)
    log.row({"step": 3, "minutes": 0.31, "loss": 0.29, "seam_l1": 0.01})
    log.close()
    with path.open(newline="") as f:
        raw = list(csv.reader(f))
    assert raw[0] == ["step", "minutes", "loss", "seam_l1"]
    assert all(len(r) == 4 for r in raw)  # no ragged rows
    rows = list(csv.DictReader(path.open(newline="")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]  # step 3 of the killed run was dropped, then re-logged
    assert rows[0]["loss"] == "0.5" and rows[0]["seam_l1"] == "" and rows[2]["seam_l1"] == "0.01"


def test_resume_with_the_same_columns_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "train.csv"
    text = "step,minutes,loss\n1,0.1,0.5\n2,0.2,0.4\n"
    path.write_text(text)
    TrainLog(path, ["step", "minutes", "loss"], total=None, initial=2, desc="t", progress=False).close()
    assert path.read_text() == text

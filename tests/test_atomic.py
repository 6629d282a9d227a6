"""streamavatar.atomic: the target is replaced only by a complete file; any failure leaves it as it was."""

from __future__ import annotations

import pytest

from streamavatar.atomic import atomic_output, atomic_write_text, temp_path_for


def _temps(folder):
    return [p for p in folder.iterdir() if ".tmp" in p.name]


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt(), SystemExit(3)):
        with pytest.raises(type(exc)):
            with atomic_output(target) as tmp:
                tmp.write_text("half")
                assert target.read_text() == "old"  # nothing visible while writing
                raise exc
        assert target.read_text() == "old" and not _temps(tmp_path)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and not _temps(tmp_path)


def test_the_temporary_file_is_hidden_beside_the_target_with_its_suffix(tmp_path):
    tmp = temp_path_for(tmp_path / "out.mp4")
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.mp4.") and tmp.suffix == ".mp4"
    assert temp_path_for(tmp_path / "out.mp4") != tmp


def test_writing_nothing_is_an_error_and_leaves_the_target(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_output(target):
            pass
    assert target.read_text() == "old"

"""``streamavatar doctor`` as a user runs it (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from streamavatar.hardware import cpu_has_native_bf16


def _doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", "doctor", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_doctor_json_describes_the_machine_and_the_self_check():
    r = _doctor("--json", "--recheck")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["torch"]["version"].startswith("2.") and d["cpu"]["cores"] >= 1
    assert d["codecs"]["libx264"] and d["codecs"]["aac"]
    assert d["speech"]["ok"] and "libespeak-ng" in d["speech"]["detail"]
    check = d["bf16_self_check"]
    assert check["cached"] is False and isinstance(check["ok"], bool)
    # bf16 is used by default only where it is right and the CPU has bf16 instructions (streamavatar.hardware)
    native = cpu_has_native_bf16()
    assert check["dtype_in_use"] == ("bfloat16" if check["ok"] and native else "float32")
    assert d["cpu"]["native_bf16"] == native and d["cpu"]["default_dtype"] == ("bf16" if native else "fp32")
    # --recheck ran the check and stored its verdict: the next run reads it.
    again = json.loads(_doctor("--json").stdout)["bf16_self_check"]
    assert again["cached"] and again["key"] == check["key"] and again["ok"] == check["ok"]


def test_doctor_text_and_a_broken_speech_engine(tmp_path):
    env = {**os.environ, "STREAMAVATAR_ESPEAK": "system", "PATH": str(tmp_path)}
    r = _doctor(env=env)
    assert r.returncode == 1  # the speech engine asked for is missing: a problem the defaults would meet
    for head in ("CPU ", "torch ", "video ", "speech ", "whisper ", "bf16 check "):
        assert any(line.startswith(head) for line in r.stdout.splitlines()), (head, r.stdout)
    assert "apt-get install espeak-ng" in r.stdout

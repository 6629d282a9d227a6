"""``streamavatar serve`` as a user calls it (subprocess): flags, YAML precedence, errors, a real start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx

from tests.serve.helpers import png_bytes


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_every_config_key(capsys):
    from streamavatar.cli import CommandTree, OneLineParser
    from streamavatar.serve import cli as serve_cli
    from streamavatar.serve.config import config_fields

    parser = OneLineParser(prog="streamavatar")
    serve_cli.register(CommandTree(parser))  # only this command: no need to import the others (torch)
    try:
        parser.parse_args(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for f in config_fields():
        assert "--" + f.name.replace("_", "-") in out


def test_config_validation_names_what_was_expected(tmp_path):
    import pytest

    from streamavatar.errors import UserInputError
    from streamavatar.serve.config import load_config

    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_sesions: 3\n")
    for path, overrides, words in [(not_mapping, {}, "mapping"), (tmp_path / "missing.yaml", {}, "does not exist"),
                                   (typo, {}, "unknown keys"), (None, {"max_sessions": 0}, "positive"),
                                   (None, {"behind_policy": "never"}, "'hold' or 'drop'"),
                                   (None, {"port": "x"}, "integer"), (None, {"ice_addresses": "localhost"}, "IP"),
                                   (None, {"api_key": "short"}, "8 characters"), (None, {"prebuffer_s": -1}, "between"),
                                   (None, {"warmup": "yes"}, "true or false")]:
        with pytest.raises(UserInputError, match=words):
            load_config(path, overrides)


def test_flags_override_yaml_override_defaults(tmp_path):
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 9123\nmax_sessions: 3\nice_servers: [stun:127.0.0.1:3478]\nbehind_policy: drop\n")
    r = run_cli("serve", "--config", str(cfg), "--model", "fake", "--max-sessions", "5", "--no-warmup", "--check")
    assert r.returncode == 0, r.stderr
    eff = json.loads(r.stdout)["effective_config"]
    assert eff["port"] == 9123 and eff["max_sessions"] == 5 and eff["behind_policy"] == "drop"
    assert eff["ice_servers"] == ["stun:127.0.0.1:3478"] and eff["warmup"] is False
    assert eff["host"] == "127.0.0.1" and eff["idle_timeout_s"] == 60.0


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    r = run_cli("serve", "--model", str(tmp_path / "no-such-model"), "--check")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no-such-model" in r.stderr and "not found" in r.stderr


def test_default_model_loads_for_serving():
    r = run_cli("serve", "--model", "default", "--no-warmup", "--check")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["effective_config"]["model"] == "default"


def test_serve_starts_answers_and_stops():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamavatar", "serve", "--model", "fake", "--port", str(port),
                             "--fake-size", "64", "--api-key", "cli-test-key"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.2)
        key = {"Authorization": "Bearer cli-test-key"}
        r = httpx.post(url + "/v1/sessions", content=png_bytes((1, 2, 3)), headers={**key, "Content-Type": "image/png"})
        assert r.status_code == 201
        sid = r.json()["session_id"]
        time.sleep(0.3)
        metrics = httpx.get(url + "/metrics").text
        assert f'streamavatar_session_fps{{session="{sid}"}}' in metrics
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert httpx.get(url + "/static/app.js").status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), err  # uvicorn re-raises SIGTERM after a graceful shutdown
    assert "closed (server_shutdown)" in err and "Application shutdown complete" in err
    assert json.loads(out[:out.index("\n}") + 2])["effective_config"]["api_key"] == "***"
    assert "cli-test-key" not in out

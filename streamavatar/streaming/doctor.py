"""``streamavatar doctor``: what this machine is and whether the default model computes right on it.

The first thing to run when output looks wrong or slow: the CPU and the instruction-set flags that pick torch's
kernels, torch/oneDNN versions and threads, the video codecs PyAV can write, the speech engine, where the
Whisper weights are cached, and the bf16-vs-fp32 self-check of the default model
(:mod:`streamavatar.streaming.numerics_check`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from streamavatar.errors import UserInputError
from streamavatar.hardware import cpu_has_native_bf16, resolve_dtype_name


def _codecs() -> dict:
    import av

    def can_encode(name: str) -> bool:
        try:
            av.codec.Codec(name, "w")
            return True
        except Exception:  # noqa: BLE001 - PyAV raises several kinds for an unknown codec
            return False

    return {"pyav": av.__version__, "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "libx264": can_encode("libx264"), "aac": can_encode("aac"), "opus": can_encode("libopus")}


def _whisper() -> dict:
    from streamavatar.audio.whisper_weights import default_cache_dir, source_model_file

    out: dict = {"cache_dir": str(default_cache_dir())}
    try:
        out["source"] = str(source_model_file())
    except UserInputError as exc:
        out["source"] = None
        out["problem"] = str(exc)
    converted = list(default_cache_dir().glob("whisper*/model.safetensors"))
    out["converted"] = [str(p.parent) for p in converted]
    return out


def _speech() -> dict:
    from streamavatar.data.speech import check_speech_engine, engine_name

    try:
        return {"engine": engine_name(), "ok": True, "detail": check_speech_engine()}
    except UserInputError as exc:
        return {"engine": os.environ.get("STREAMAVATAR_ESPEAK", "library"), "ok": False, "detail": str(exc)}


def _self_check(recheck: bool, model: str) -> dict:
    from streamavatar.streaming.numerics_check import cache_path
    from streamavatar.streaming.pipeline import load

    # Checked in bf16 even where ``auto`` picks fp32 (no bf16 instructions), for a user who forces --dtype bf16.
    pipe = load(model, warmup=False, numerics_check=True, dtype="bf16")
    if recheck and pipe.numerics is not None and pipe.numerics.cached:
        cache_path(pipe.numerics.key).unlink(missing_ok=True)
        pipe = load(model, warmup=False, numerics_check=True, dtype="bf16")
    rep = pipe.numerics
    in_use = "bfloat16" if rep is not None and rep.ok and resolve_dtype_name("auto") == "bf16" else "float32"
    if rep is None:
        return {"model": pipe.name, "dtype_in_use": str(pipe.dtype).removeprefix("torch."), "ok": None,
                "reason": "no CPU in bf16: nothing to check"}
    return {"model": pipe.name, "dtype_in_use": in_use, **rep.to_dict()}


def report(*, recheck: bool = False, model: str = "default") -> dict:
    """Everything ``doctor`` prints, as one dict."""
    import torch

    from streamavatar import __version__
    from streamavatar.streaming.numerics_check import cpu_description, onednn_version

    cpu = cpu_description()
    return {
        "streamavatar": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpu": {**cpu, "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
                "default_dtype": resolve_dtype_name("auto")},
        "torch": {"version": torch.__version__, "onednn": onednn_version(),
                  "mkldnn_enabled": torch.backends.mkldnn.is_available(), "threads": torch.get_num_threads(),
                  "cuda": torch.cuda.is_available(),
                  "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
        "codecs": _codecs(), "whisper": _whisper(), "speech": _speech(),
        "bf16_self_check": _self_check(recheck, model),
    }


def _print(r: dict) -> None:
    c, t, k, w, s, n = r["cpu"], r["torch"], r["codecs"], r["whisper"], r["speech"], r["bf16_self_check"]
    print(f"streamavatar {r['streamavatar']} · Python {r['python']} · {r['platform']}")
    print(f"CPU        {c['model']} ({c['machine']}, {c['cores']} cores); flags: {' '.join(c['flags']) or '-'}; "
          f"bf16 instructions {'yes' if c['native_bf16'] else 'no'} -> default dtype {c['default_dtype']}")
    print(f"torch      {t['version']} · oneDNN {t['onednn'] or '-'} · {t['threads']} threads · CUDA "
          f"{', '.join(t['cuda_devices']) if t['cuda'] else 'no'}")
    print(f"video      PyAV {k['pyav']} (libavcodec {k['ffmpeg']}); H.264 (libx264) {'yes' if k['libx264'] else 'NO'}"
          f", AAC {'yes' if k['aac'] else 'NO'}")
    print(f"speech     {s['engine']}: {s['detail']}")
    print(f"whisper    cache {w['cache_dir']}; converted: {', '.join(w['converted']) or 'not yet (on first use)'}"
          + (f"; PROBLEM: {w['problem']}" if w.get("problem") else ""))
    if n.get("ok") is None:
        print(f"bf16 check {n['reason']}")
    else:
        verdict = ("FAILED, the model runs in fp32" if not n["ok"] else "OK, bf16 in use"
                   if n["dtype_in_use"] == "bfloat16" else "OK (but fp32 is the default here: no bf16 instructions)")
        when = "cached verdict" if n["cached"] else "ran in {:.2f} s".format(n["seconds"])
        print(f"bf16 check {verdict} ({n['reason']}; {when})")


def _doctor(args: argparse.Namespace) -> int:
    r = report(recheck=args.recheck, model=args.model)
    if args.json:
        print(json.dumps(r))
    else:
        _print(r)
    problems = (not r["codecs"]["libx264"]) or (not r["codecs"]["aac"]) or (not r["speech"]["ok"]) \
        or r["whisper"]["source"] is None
    return 1 if problems else 0


def register(tree) -> None:
    p = tree.command("doctor", "print the machine (CPU flags, torch/oneDNN, codecs, caches) and whether bf16 "
                     "computes right on it (exit 1 when something the defaults need is missing)", _doctor)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--recheck", action="store_true", help="run the bf16 self-check again instead of its cached verdict")
    p.add_argument("--model", default="default", help="model to self-check (default: the bundled one)")


"""Long-stream ablation: no sink / sink only / sink + RAPR on the same weights, per-minute drift and sync.

For each variant the model folder's streaming flags are rewritten (weights shared by a hard link or copy), a
corpus clip's reference frame drives an N-minute stream whose talk and listen audio are that clip's own voices
looped, and every generated frame is measured:

* appearance drift: the judge's identity distance to the reference frame and the static-background error
  (``streamavatar.eval.drift``), per minute, with the least-squares slope per minute;
* sync: Pearson r per minute between the exactly measured mouth opening of the generated frames
  (``eval.mouth_measure``) and the corpus ground truth looped with the audio.

By default this is an inference-time ablation: all variants run the same trained weights and only the cache
layout and the RoPE indices change at run time. ``--variants own`` streams a model only with the layout it was
trained with (its folder's flags): the trained ablation of ``docs/stage2.md``, one student per variant.

    PYTHONPATH=. python benchmarks/ablation_long_stream.py --model RUN --corpus /work/data/corpus \
        --minutes 5 --out ablation_out [--variants own]

Writes ``OUT/ablation.json``, ``OUT/ablation.md`` (the table) and ``OUT/drift.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

VARIANTS = {  # name -> (reference_sink, rapr)
    "no sink": (False, False),
    "sink": (True, False),
    "sink + RAPR": (True, True),
}


def own_variant(model: Path) -> str:
    """The name in :data:`VARIANTS` of the cache layout that model folder ``model`` carries."""
    kind = "student" if (model / "student.json").is_file() else "teacher"
    stream = json.loads((model / f"{kind}.json").read_text())["model"]["stream"]
    flags = (bool(stream["reference_sink"]), bool(stream["rapr"]) and bool(stream["reference_sink"]))
    return next(name for name, v in VARIANTS.items() if v == flags)


def variant_folder(model: Path, sink: bool, rapr: bool, root: Path) -> Path:
    """A copy of model folder ``model`` whose JSON carries the given streaming flags."""
    kind = "student" if (model / "student.json").is_file() else "teacher"
    info = json.loads((model / f"{kind}.json").read_text())
    info["model"]["stream"]["reference_sink"] = sink
    info["model"]["stream"]["rapr"] = rapr
    out = root / f"sink{int(sink)}_rapr{int(rapr)}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{kind}.json").write_text(json.dumps(info, indent=1))
    weights = out / f"{kind}.safetensors"
    if not weights.exists():
        try:
            os.link(model / f"{kind}.safetensors", weights)
        except OSError:
            shutil.copy(model / f"{kind}.safetensors", weights)
    return out


def looped_wav(audio: np.ndarray, sr: int, seconds: float, path: Path) -> None:
    n = int(round(seconds * sr))
    reps = int(np.ceil(n / len(audio)))
    sf.write(path, np.tile(audio, reps)[:n], sr)


def per_minute_r(gen: np.ndarray, ref: np.ndarray, fps: float) -> list[float | None]:
    from streamavatar.eval.stats import pearson_r

    minutes = (np.arange(len(gen)) / fps / 60).astype(int)
    out = []
    for m in range(int(minutes[-1]) + 1):
        sel = minutes == m
        out.append(pearson_r(gen[sel], ref[sel]) if sel.sum() > 10 else None)
    return out


def measure(frames: np.ndarray, clip, judge) -> dict:
    from streamavatar.eval.drift import background_error, identity_distance, static_background, summarise_series
    from streamavatar.eval.judge import run_judge
    from streamavatar.eval.mouth_measure import measure_clip_mouth

    n = len(frames)
    idx = np.arange(n) % clip.n_frames
    ann = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == clip.n_frames else v)
           for k, v in clip.annotations.items()}
    gt = clip.frames()
    ref_id = run_judge(judge, gt[:1]).identity[0]
    ident = identity_distance(run_judge(judge, frames).identity, ref_id)
    bg = background_error(frames, static_background(gt))
    mouth = measure_clip_mouth(frames, clip.meta, ann).open
    return {"identity_distance": summarise_series(ident, clip.fps), "background_error": summarise_series(bg, clip.fps),
            "mouth_r_per_minute": per_minute_r(mouth, ann["mouth_open"], clip.fps),
            "series": {"identity_distance": ident.tolist(), "background_error": bg.tolist()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="student (or teacher) model folder")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--clip", default=None, help="corpus clip id (default: the first test clip)")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="all",
                    help="'all' (the three layouts on the same weights) or 'own' (only the model's own layout)")
    args = ap.parse_args()
    if args.variants not in ("all", "own"):
        ap.error(f"--variants must be 'all' or 'own', got {args.variants!r}")
    chosen = dict(VARIANTS) if args.variants == "all" else {
        (n := own_variant(Path(args.model))): VARIANTS[n]}

    import torch

    import streamavatar as sa
    from streamavatar.eval.corpus_clip import load_corpus_clip, split_clip_ids
    from streamavatar.eval.judge import load_judge
    from streamavatar.eval.plots import line_plot
    from streamavatar.streaming.offline import generate_video

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip_id = args.clip or split_clip_ids(args.corpus, "test")[0]
    clip = load_corpus_clip(args.corpus, clip_id)
    seconds = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="ablation_"))
    talk, sr = clip.talk_audio()
    listen, sr_l = clip.listen_audio()
    looped_wav(talk, sr, seconds, work / "talk.wav")
    looped_wav(listen, sr_l, seconds, work / "listen.wav")
    reference = clip.frames()[0]
    judge = load_judge()
    from streamavatar.data.video_io import read_frames

    results = {}
    for name, (sink, rapr) in chosen.items():
        folder = variant_folder(Path(args.model), sink, rapr, work)
        pipe = sa.load(str(folder), threads=args.threads)
        video = out / f"{folder.name}_{clip_id}.mp4"
        res = generate_video(pipe, reference, video, talk_audio=work / "talk.wav", listen_audio=work / "listen.wav",
                             seconds=seconds, progress=True)
        m = measure(read_frames(video), clip, judge)
        m["speed"] = res.metrics
        results[name] = m
        print(name, json.dumps({k: m[k] for k in ("mouth_r_per_minute",)}),
              "identity/min", [round(v, 4) for v in m["identity_distance"]["per_minute"]], flush=True)

    rows = ["| variant | identity distance per minute | slope / min | background error per minute | slope / min "
            "| mouth r per minute |", "| --- | --- | --- | --- | --- | --- |"]
    for name, m in results.items():
        def fmt(xs):
            return " · ".join("–" if x is None else f"{x:.3f}" for x in xs)
        rows.append(f"| {name} | {fmt(m['identity_distance']['per_minute'])} | "
                    f"{m['identity_distance']['slope_per_minute']:+.4f} | {fmt(m['background_error']['per_minute'])} | "
                    f"{m['background_error']['slope_per_minute']:+.3f} | {fmt(m['mouth_r_per_minute'])} |")
    table = "\n".join(rows)
    (out / "ablation.md").write_text(f"Clip {clip_id}, {args.minutes:g} minutes, model {args.model}\n\n{table}\n")
    summary = {k: {kk: vv for kk, vv in v.items() if kk != "series"} for k, v in results.items()}
    (out / "ablation.json").write_text(json.dumps({"clip": clip_id, "minutes": args.minutes, "model": args.model,
                                                   "variants": summary}, indent=1))
    # one point per second keeps the plot readable
    series = []
    for name, m in results.items():
        v = np.asarray(m["series"]["identity_distance"])
        sec = len(v) // 25
        y = v[:sec * 25].reshape(sec, 25).mean(1)
        series.append((name, np.arange(sec) / 60.0, y))
    line_plot(series, "identity distance to the reference (judge), 1 s means", "minutes",
              "1 - cos").save(out / "drift.png")
    print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

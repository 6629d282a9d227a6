"""The engine at 256x256 (stride-16 VAE) against today's default at 128x128, interleaved, in one run.

    PYTHONPATH=. python benchmarks/bench_stream_256.py --vae VAE_DIR [--seconds 60] [--rounds 2] [--compile] [--out F]

A trained 256x256 student does not exist yet, so the 256x256 side is a *speed stand-in* with the exact
architecture it will have: the shipped student's DiT widened to the ``tiny64s16`` preset's 64 latent channels
(:func:`streamavatar.models.widen.widen_model`, same blocks, same 16x16 latent grid), the given ``tiny64s16`` VAE
directory (e.g. the refined decoder of docs/vae.md) and the whole engine (audio encoding + DiT + VAE decode) of
``bench stream``. Its pictures are meaningless; its timings are the ones a trained model of that shape gets.
Each round streams the default, then the stand-in, so both numbers come from the same machine load. Prints one
JSON object: per-model medians of RTF, first-frame delay and per-stage p50, and the 256/128 ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from streamavatar.bench.stream import run_engine_benchmark


def write_standin(folder: Path, vae_dir: str) -> Path:
    """The default student widened to ``tiny64s16`` on ``vae_dir`` at 256x256, as a model folder."""
    from streamavatar.config import model_preset
    from streamavatar.models.avatar_model import AvatarModel
    from streamavatar.models.vae import load_vae
    from streamavatar.models.widen import widen_model
    from streamavatar.streaming.model_folder import DEFAULT_DIR

    vae = load_vae(vae_dir)
    preset = model_preset("tiny64s16")
    if vae.config.latent_channels != preset.dit.latent_channels or vae.config.spatial_stride != 16:
        raise SystemExit(f"{vae_dir} is not a tiny64s16 VAE (64 channels, stride 16)")
    base = AvatarModel.from_pretrained(DEFAULT_DIR)
    dit = widen_model(base.dit, preset.dit.latent_channels)
    mc = replace(base.config, name="tiny64s16-standin", dit=dit.cfg, vae_spatial_stride=16)
    info = dict(base.info)
    info["train"] = {**info.get("train", {}), "vae": str(Path(vae_dir).resolve()), "preset": "tiny64s16"}
    info["resolution"] = 256
    info["note"] = "speed stand-in: the default student's DiT widened to 64 channels (benchmarks/bench_stream_256.py)"
    model = AvatarModel(mc, base.projector_config, info, kind="student")
    model.dit.load_state_dict(dit.state_dict())
    model.projector.load_state_dict(base.projector.state_dict())
    return model.save_pretrained(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vae", required=True, help="a tiny64s16 VAE directory")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks (inductor), as bench stream")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        standin = str(write_standin(Path(tmp) / "standin256", args.vae))
        models = {"default_128": "default", "standin_256": standin}
        runs: dict[str, list[dict]] = {k: [] for k in models}
        for _ in range(args.rounds):
            for name, spec in models.items():
                runs[name].append(run_engine_benchmark(args.seconds, model=spec, progress=False,
                                                         compile="inductor" if args.compile else None))

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def stage(name: str, key: str) -> float:
        return statistics.median(r["stage_ms_p50"].get(key, float("nan")) for r in runs[name])

    out: dict = {"seconds": args.seconds, "rounds": args.rounds, "vae": args.vae,
                 "compile": "inductor" if args.compile else None}
    for name in models:
        last = runs[name][-1]
        out[name] = {"rtf": med(name, "rtf"), "ffd_s": med(name, "ffd_s"), "resolution": last["resolution"],
                     "dtype": last["dtype"], "stage_ms_p50": {k: stage(name, k) for k in last["stage_ms_p50"]}}
    out["rtf_256_over_128"] = round(out["standin_256"]["rtf"] / out["default_128"]["rtf"], 3)
    out["runs"] = runs
    text = json.dumps(out)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

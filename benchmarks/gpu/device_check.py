"""Device check of the streaming engine at the paper's sizes: DiT + real-architecture Wan VAE, eager vs compiled.

    python benchmarks/gpu/device_check.py --json OUT [--dry-run] [--chunks N]

For each configuration — ``wan2.1-1.3b`` at 832×480 with the Wan2.1 VAE and ``wan2.2-ti2v-5b`` at 928×704 with
the Wan2.2 VAE (diffusers ``AutoencoderKLWan``; random weights, Wan's own initialisation) — it streams chunks of
3 latent frames (12 video frames) in 3 denoising steps on one device, in bf16, and reports for eager and for
``torch.compile`` (:meth:`AvatarDiT.compile_blocks` + the ring KV cache; the VAE stays eager):

* per-chunk ms of the DiT and of the VAE's chunk-by-chunk causal decode (``StreamingDecoder``), median over the
  timed chunks (after the window has filled, so every chunk attends to the full cache);
* FPS = 12 / (DiT + VAE seconds per chunk) with both stages on one device run one after the other, RTF = (DiT +
  VAE) / 0.48 s, and each stage's own RTF;
* FFD: reference encode + sink prefill + the first chunk's DiT + decode on a fresh stream (compile excluded);
* peak device memory, the analytic DiT FLOPs per chunk, achieved TFLOP/s and the fraction of the bf16 peak;
* the compile time (the warm-up stream of the compiled run).

Audio enters as random talk/listen tokens (the projector and the audio encoder are not timed; they are small).
``--dry-run`` runs the same code on the CPU at tiny sizes (both presets' layouts at width 256 and 2 layers, at
32×32 with the real Wan2.1 / Wan2.2 VAE architectures, fp32, the ``aot_eager`` backend, 2 chunks) so
that the script is tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from streamavatar import constants as K  # noqa: E402
from streamavatar.bench.flops import dit_chunk_flops, throughput  # noqa: E402
from streamavatar.config import model_preset  # noqa: E402
from streamavatar.diffusion.chunk_sampler import ChunkSampler  # noqa: E402
from streamavatar.models.dit import AvatarDiT  # noqa: E402
from streamavatar.models.vae import build_vae  # noqa: E402


@dataclass(frozen=True)
class CheckConfig:
    """One measured configuration: DiT preset, VAE preset, frame size."""

    dit: str
    vae: str
    width: int
    height: int
    #: DiTConfig fields replaced for the dry run (the preset's layout at a tiny width and depth).
    shrink: tuple[tuple[str, int], ...] = ()


FULL = (CheckConfig("wan2.1-1.3b", "wan2.1", 832, 480), CheckConfig("wan2.2-ti2v-5b", "wan2.2", 928, 704))
_TINY = (("dim", 256), ("ffn_dim", 256), ("num_heads", 2), ("num_layers", 2))
DRY = (CheckConfig("wan2.1-1.3b", "wan2.1", 32, 32, _TINY), CheckConfig("wan2.2-ti2v-5b", "wan2.2", 32, 32, _TINY))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def build(cfg: CheckConfig, device: torch.device, dtype: torch.dtype):
    """The DiT (Wan init), its stream config and the VAE (random, diffusers architecture) on ``device``."""
    mc = model_preset(cfg.dit)
    if cfg.shrink:
        mc = replace(mc, dit=replace(mc.dit, **dict(cfg.shrink)))
    with torch.device(device):
        model = AvatarDiT(mc.dit)
    model = model.to(dtype).eval().requires_grad_(False)
    vae = build_vae(cfg.vae, device=device).to(dtype).eval().requires_grad_(False)
    if vae.config.spatial_stride != mc.vae_spatial_stride or vae.config.latent_channels != mc.dit.latent_channels:
        raise SystemExit(f"{cfg.dit} does not run on the {cfg.vae} VAE")
    return model, mc, vae


def run_stream(model: AvatarDiT, stream, vae, cfg: CheckConfig, device: torch.device, dtype: torch.dtype,
               chunks: int, seed: int = 0) -> dict:
    """Stream ``chunks`` chunks on a fresh state; returns the timings (see the module docstring)."""
    c = model.cfg
    stride = vae.config.spatial_stride
    h, w = cfg.height // stride, cfg.width // stride
    sampler = ChunkSampler(model, stream)
    g = torch.Generator(device=device).manual_seed(seed)
    image = torch.rand(1, 3, 1, cfg.height, cfg.width, generator=g, device=device) * 2 - 1
    audio_shape = (1, stream.chunk_frames, c.audio_tokens_per_frame, c.audio_dim)
    dit_ms, vae_ms = [], []
    with torch.no_grad():
        _sync(device)
        t0 = time.perf_counter()
        ref = vae.encode(image.to(dtype)).float()
        decoder = vae.streaming_decoder()
        decoder.decode(ref.to(dtype))  # the reference frame opens the decoder's causal cache
        state = sampler.start(ref)
        _sync(device)
        prefill_s = time.perf_counter() - t0
        ffd = None
        for i in range(chunks):
            talk = torch.randn(audio_shape, generator=g, device=device, dtype=dtype)
            listen = torch.randn(audio_shape, generator=g, device=device, dtype=dtype)
            _sync(device)
            a = time.perf_counter()
            lat = sampler.next_chunk(state, talk_audio=talk, listen_audio=listen, generator=g)
            _sync(device)
            b = time.perf_counter()
            frames = decoder.decode(lat.to(dtype))
            _sync(device)
            e = time.perf_counter()
            dit_ms.append((b - a) * 1000)
            vae_ms.append((e - b) * 1000)
            if i == 0:
                ffd = e - t0
    assert frames.shape[2] == 4 * stream.chunk_frames and (h, w) == tuple(lat.shape[-2:])
    return {"dit_ms": dit_ms, "vae_ms": vae_ms, "ffd_s": ffd, "prefill_s": prefill_s,
            "cached_frames_at_end": len(state.cache.frames), "latent_hw": [h, w]}


def measure(cfg: CheckConfig, device: torch.device, dtype: torch.dtype, chunks: int, compile: str | None) -> dict:
    """Eager or compiled measurement of one configuration."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch._dynamo.reset()
    model, mc, vae = build(cfg, device, dtype)
    stream = replace(mc.stream, ring_cache=bool(compile))
    compile_s = None
    if compile:
        model.compile_blocks(backend=compile)
        t = time.perf_counter()
        run_stream(model, stream, vae, cfg, device, dtype, chunks=2, seed=1)  # compiles prefill + chunk graphs
        compile_s = round(time.perf_counter() - t, 2)
    else:
        run_stream(model, stream, vae, cfg, device, dtype, chunks=1, seed=1)  # first-call costs (cuBLAS, …)
    r = run_stream(model, stream, vae, cfg, device, dtype, chunks=chunks)
    # steady state: chunks after the window has filled (chunk 0 fills the sink, the window then fills)
    first_full = -(-(stream.sink_frames - 1) // stream.chunk_frames) + -(-stream.window_frames // stream.chunk_frames)
    steady = slice(min(first_full, chunks - 1), None)
    dit_s = statistics.median(r["dit_ms"][steady]) / 1000
    vae_s = statistics.median(r["vae_ms"][steady]) / 1000
    tokens = (r["latent_hw"][0] // mc.dit.patch_size[1]) * (r["latent_hw"][1] // mc.dit.patch_size[2])
    flops = dit_chunk_flops(mc.dit, stream, tokens)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    frames = K.VAE_TEMPORAL_STRIDE * stream.chunk_frames
    out = {
        "compile": compile, "compile_s": compile_s, "chunks": chunks,
        "dit_ms_p50": round(dit_s * 1000, 2), "vae_ms_p50": round(vae_s * 1000, 2),
        "dit_ms": [round(x, 2) for x in r["dit_ms"]], "vae_ms": [round(x, 2) for x in r["vae_ms"]],
        "fps": round(frames / (dit_s + vae_s), 2), "rtf": round((dit_s + vae_s) / K.CHUNK_SECONDS, 4),
        "rtf_dit": round(dit_s / K.CHUNK_SECONDS, 4), "rtf_vae": round(vae_s / K.CHUNK_SECONDS, 4),
        "ffd_s": round(r["ffd_s"], 4), "prefill_s": round(r["prefill_s"], 4), "peak_memory_mb": _peak_mb(device),
        "flops": flops.to_dict(), "dit_throughput": throughput(flops.per_chunk, dit_s, name),
    }
    del model, vae
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True, help="where to write the result")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, fp32, aot_eager (tests the script)")
    ap.add_argument("--chunks", type=int, default=None, help="timed chunks per run (default 8; dry run 2)")
    ap.add_argument("--backend", default=None, help="torch.compile backend (default inductor; dry run aot_eager)")
    ap.add_argument("--only", default=None, help="run only this DiT preset")
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    args = ap.parse_args(argv)
    if args.dry_run:
        device, dtype, configs = torch.device("cpu"), torch.float32, DRY
        backend, chunks = args.backend or "aot_eager", args.chunks or 2
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("device_check: no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
            return 2
        device, dtype, configs = torch.device("cuda"), torch.bfloat16, FULL
        backend, chunks = args.backend or "inductor", args.chunks or 8
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {"dry_run": args.dry_run, "device": name, "torch": torch.__version__,
              "dtype": str(dtype).removeprefix("torch."), "steps": model_preset(configs[0].dit).stream.num_steps,
              "runs": []}
    out_path = Path(args.json)
    for cfg in configs:
        if args.only and cfg.dit != args.only:
            continue
        entry = {"dit": cfg.dit, "vae": cfg.vae, "size": [cfg.width, cfg.height]}
        for mode in ([None] if args.no_compile else [None, backend]):
            key = "compiled" if mode else "eager"
            t = time.perf_counter()
            try:
                entry[key] = measure(cfg, device, dtype, chunks, mode)
            except Exception as exc:  # one failed run must not lose the others' numbers
                entry[key] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            entry[key]["wall_s"] = round(time.perf_counter() - t, 1)
            print(json.dumps({cfg.dit: {key: {k: entry[key].get(k) for k in
                                              ("fps", "rtf", "ffd_s", "dit_ms_p50", "vae_ms_p50", "error")}}}),
                  file=sys.stderr, flush=True)
        result["runs"].append(entry)
        out_path.write_text(json.dumps(result, indent=1))  # partial results survive a timeout
    out_path.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

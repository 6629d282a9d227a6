"""``streamavatar demo``, ``streamavatar generate`` and ``streamavatar model set-prompt``."""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.cli_args import bounded_seconds, positive_int, seed_int

#: Same as :data:`streamavatar.streaming.offline.MAX_SECONDS` (not imported here: the CLI starts fast).
MAX_SECONDS = 3600.0


def _engine_options(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", default="default",
                       help="'default' (bundled with the package) or a model folder (student.json + "
                            "student.safetensors, or a teacher run folder)")
    p.add_argument("--seed", type=seed_int(), default=0, help="noise seed, 0 to 2**64-1 (same seed, same video)")
    p.add_argument("--threads", type=positive_int("--threads"), default=None,
                   help="torch threads per stage (default 1 on CPU: the DiT and the decode thread use a core each)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"),
                   help="compute dtype (default auto: bf16 where this machine computes it natively, else fp32)")
    p.add_argument("--dit-device", default="cpu", help="device of the DiT and audio encoder (e.g. cuda:0)")
    p.add_argument("--vae-device", default="cpu", help="device of the VAE decoder (e.g. cuda:1)")
    p.add_argument("--no-overlap", action="store_true",
                   help="decode on the same thread as the DiT (for measuring what the overlap buys)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   choices=("inductor", "aot_eager", "eager", "cudagraphs"),
                   help="torch.compile the DiT blocks (default backend inductor) with the ring KV cache")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _load(args: argparse.Namespace, spec: str):
    from streamavatar.streaming.pipeline import load

    return load(spec, dtype=args.dtype, dit_device=args.dit_device, vae_device=args.vae_device,
                threads=args.threads, overlap=not args.no_overlap, compile=args.compile)


def _report(args: argparse.Namespace, result, pipe) -> None:
    m = result.metrics
    summary = {"out": str(result.out), "frames": result.frames, "seconds": round(result.seconds, 3),
               "model": pipe.name, "resolution": list(pipe.frame_size), "rtf": m["rtf"], "ffd_s": m["ffd_s"],
               "chunk_ms": m["chunk_ms"], "stage_ms_p50": m["stage_ms_p50"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {result.out}: {result.frames} frames ({result.seconds:.2f} s) at "
              f"{pipe.frame_size[1]}x{pipe.frame_size[0]}, 25 fps, model {pipe.name}")
        print(f"real-time factor {m['rtf']:.3f} (below 1 is faster than real time), "
              f"first-frame delay {m['ffd_s']:.3f} s, per chunk p50 {m['chunk_ms']['p50']:.0f} ms "
              f"p95 {m['chunk_ms']['p95']:.0f} ms")


def _generate(args: argparse.Namespace) -> int:
    from streamavatar.reference_image import open_image
    from streamavatar.streaming.offline import check_inputs, check_output_path, generate_video

    # Check every input before the model loads (seconds, not minutes, to a clear error).
    if args.talk_audio is None and args.listen_audio is None:
        print("streamavatar generate: error: give --talk-audio and/or --listen-audio (see --help)", file=sys.stderr)
        return 2
    check_output_path(args.out)
    open_image(args.image)
    inputs = check_inputs(args.talk_audio, args.listen_audio, args.seconds)
    pipe = _load(args, args.model)
    result = generate_video(pipe, args.image, args.out, seed=args.seed, mix_listen=args.mix_listen, inputs=inputs)
    _report(args, result, pipe)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streamavatar import constants as K
    from streamavatar.streaming.default_assets import bundled_inputs
    from streamavatar.streaming.offline import AudioFileStream, check_inputs, check_output_path, generate_video

    check_output_path(args.out)
    image, speech = bundled_inputs()
    # The bundled speech, then one chunk of silence to show the return to idle.
    seconds = args.seconds or AudioFileStream(speech, "bundled speech").seconds + K.CHUNK_SECONDS
    inputs = check_inputs(speech, None, seconds)
    pipe = _load(args, "default")
    result = generate_video(pipe, image, args.out, seed=args.seed, inputs=inputs)
    _report(args, result, pipe)
    return 0


def _set_prompt(args: argparse.Namespace) -> int:
    from streamavatar.models.avatar_model import AvatarModel, find_model_files

    files = find_model_files(args.model)
    model = AvatarModel.from_files(files)
    model.set_prompt(args.umt5, args.prompt)
    model.save_pretrained(files.weights_path.parent)
    print(f"{files.weights_path}: fixed prompt {args.prompt!r} stored ({model.text_context.shape[1]} tokens of "
          f"{model.text_context.shape[2]})")
    return 0


def register(tree) -> None:
    """Add ``streamavatar demo``, ``streamavatar generate`` and ``streamavatar model set-prompt``."""
    m = tree.subcommand("model", "set-prompt", "encode a fixed text prompt once with a local umT5 encoder and store "
                        "it with a model folder (for Wan checkpoints; the tiny models use the zero prompt)",
                        _set_prompt)
    m.add_argument("--model", required=True, help="model folder (student.json + student.safetensors, …)")
    m.add_argument("--umt5", required=True, help="directory of a UMT5EncoderModel and its tokenizer (no download)")
    m.add_argument("--prompt", required=True, help="the prompt text")
    d = tree.command("demo", "generate a short video with the bundled default model, image and speech; prints the "
                     "real-time factor and first-frame delay", _demo)
    d.add_argument("--out", default="demo.mp4", help="output .mp4 (default demo.mp4)")
    d.add_argument("--seconds", type=bounded_seconds("--seconds", MAX_SECONDS), default=None,
                   help="length, at most 3600 (default: the bundled speech, about 5 s, plus 0.48 s)")
    _engine_options(d, model=False)
    p = tree.command("generate", "make an mp4 (H.264 + AAC) from a reference image and talk and/or listen audio, "
                     "streamed chunk by chunk", _generate)
    p.add_argument("--image", required=True, help="reference image (PNG, JPEG, …)")
    p.add_argument("--talk-audio", default=None, help="the avatar's own voice (WAV/FLAC/OGG, any rate 8–192 kHz)")
    p.add_argument("--listen-audio", default=None, help="the user's voice the avatar listens to")
    p.add_argument("--seconds", type=bounded_seconds("--seconds", MAX_SECONDS), default=None,
                   help="length of the video, exact to the nearest 40 ms frame, at most 3600 (default: the "
                        "longer audio)")
    p.add_argument("--mix-listen", action="store_true", help="mp4 audio = agent + user voice (default: agent only)")
    p.add_argument("--out", required=True, help="output .mp4")
    _engine_options(p)

"""``streamavatar livekit-worker``: the LiveKit avatar dispatcher, or (``--join``) one room's avatar worker.

Registered without importing LiveKit, so ``streamavatar --help`` works without the ``[livekit]`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from streamavatar.errors import UserInputError


def register(tree) -> None:
    """Add ``streamavatar livekit-worker``."""
    p = tree.command("livekit-worker", "LiveKit Agents avatar: the per-machine dispatcher (POST /launch starts "
                     "one worker per room), or with --join one room's worker", _main)
    p.add_argument("--join", action="store_true",
                   help="join one room now (what the dispatcher starts); the token comes from --token or "
                        "$STREAMAVATAR_LIVEKIT_TOKEN")
    p.add_argument("--url", default=None, help="--join: the LiveKit server URL (ws:// or wss://)")
    p.add_argument("--room", default=None, help="--join: the room name (for logs)")
    p.add_argument("--token", default=None, help="--join: the avatar's join token (prefer the environment variable)")
    p.add_argument("--model", default="default", help="default | a model folder | fake (test double, no model)")
    p.add_argument("--image", default=None, help="reference image (default: the bundled one)")
    p.add_argument("--audio-sample-rate", type=int, default=24000, help="published voice rate in Hz (default 24000)")
    p.add_argument("--interrupt-mode", choices=("drop", "mute"), default="drop",
                   help="on barge-in, discard talking frames not yet sent (drop) or play them silent (mute)")
    p.add_argument("--agent-timeout", type=float, default=60.0, help="--join: seconds to wait for the agent")
    p.add_argument("--host", default="127.0.0.1", help="dispatcher: bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8089, help="dispatcher: port (default 8089)")
    p.add_argument("--max-rooms", type=int, default=2, help="dispatcher: rooms (worker processes) at most")
    p.add_argument("--api-key", default=os.environ.get("STREAMAVATAR_DISPATCHER_KEY"),
                   help="dispatcher: require 'Authorization: Bearer KEY' (default $STREAMAVATAR_DISPATCHER_KEY)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _require_livekit() -> None:
    try:
        import livekit.agents  # noqa: F401
    except ImportError:
        raise UserInputError('livekit-worker needs the livekit extra: pip install "streamavatar[livekit]"') from None


def _main(args: argparse.Namespace) -> int:
    _require_livekit()
    logging.basicConfig(level=args.log_level, format=f"[{args.room or 'dispatcher'}] %(asctime)s %(levelname)s "
                        "%(name)s: %(message)s")
    if args.audio_sample_rate % 25 or not 8000 <= args.audio_sample_rate <= 192000:
        raise UserInputError("--audio-sample-rate must be a multiple of 25 between 8000 and 192000")
    if args.image is not None and not os.path.isfile(args.image):
        raise UserInputError(f"--image: no such file: {args.image}")
    if args.join:
        return _join(args)
    return _dispatch(args)


def _join(args: argparse.Namespace) -> int:
    from streamavatar.integrations.livekit.dispatcher import TOKEN_ENV
    from streamavatar.integrations.livekit.tokens import TokenError, token_claims
    from streamavatar.integrations.livekit.worker import load_image, load_pipeline, run_room

    token = args.token or os.environ.get(TOKEN_ENV)
    if not args.url or not token:
        raise UserInputError(f"--join needs --url and a token (--token or ${TOKEN_ENV})")
    try:
        token_claims(token)
    except TokenError as exc:
        raise UserInputError(f"bad token: {exc}") from None
    from livekit import rtc

    image = load_image(args.image)
    pipeline = load_pipeline(args.model)
    try:
        why = asyncio.run(run_room(args.url, token, pipeline=pipeline, reference_image=image,
                                   audio_sample_rate=args.audio_sample_rate, agent_timeout_s=args.agent_timeout,
                                   interrupt_mode=args.interrupt_mode))
    except rtc.ConnectError as exc:
        print(f"streamavatar: error: could not join room {args.room or '?'} at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(f"avatar worker for room {args.room or '?'} stopped: {why}", file=sys.stderr)
    return 0 if why in ("agent_left", "disconnected", "runner_done") else 1


def _dispatch(args: argparse.Namespace) -> int:
    import uvicorn

    from streamavatar.integrations.livekit.dispatcher import create_dispatcher_app, default_worker_command

    worker_args = ["--model", args.model, "--audio-sample-rate", str(args.audio_sample_rate),
                   "--interrupt-mode", args.interrupt_mode, "--agent-timeout", str(args.agent_timeout),
                   "--log-level", args.log_level]
    if args.image:
        worker_args += ["--image", os.path.abspath(args.image)]
    app = create_dispatcher_app(worker_command=default_worker_command(worker_args), max_rooms=args.max_rooms,
                                api_key=args.api_key)
    if not args.api_key and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.warning("no --api-key: anyone who reaches %s:%s can start avatar workers", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0

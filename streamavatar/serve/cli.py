"""``streamavatar serve``: every :class:`~streamavatar.serve.config.ServeConfig` key is a flag."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from streamavatar.serve.config import FIELD_HELP, config_fields, load_config


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _serve(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in config_fields()}
    config = load_config(args.config, overrides)
    from streamavatar.serve.loader import load_generator

    pipeline = load_generator(config.model, config.fake_size, config.dtype)  # bad --model fails here, before binding
    print(json.dumps({"effective_config": config.public_dict()}, indent=2), flush=True)
    if args.check:
        return 0
    if config.api_key is None:
        print("streamavatar serve: warning: no --api-key; anyone who can reach the port may create sessions",
              file=sys.stderr)
    import uvicorn

    from streamavatar.serve.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config, pipeline=pipeline)
    uvicorn.run(app, host=config.host, port=config.port, ws_max_size=config.ws_max_message_bytes + 1024,
                log_level="info", access_log=False)
    return 0


def register(tree) -> None:
    """Add ``streamavatar serve``."""
    p = tree.command("serve", "serve live interactive avatars over WebRTC (HTTP API, WebSocket, web client)",
                     _serve)
    p.add_argument("--config", default=None, metavar="YAML", help="YAML file of config keys (flags win)")
    p.add_argument("--check", action="store_true", help="load the model, print the effective config and exit")
    for f in config_fields():
        default = f.default
        help_text = f"{FIELD_HELP.get(f.name, f.name)} (default {default!r})"
        if isinstance(default, bool):
            p.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        elif isinstance(default, tuple):
            p.add_argument(_flag(f.name), dest=f.name, default=None, metavar="A,B", help=help_text)
        elif isinstance(default, int):
            p.add_argument(_flag(f.name), dest=f.name, type=int, default=None, help=help_text)
        elif isinstance(default, float):
            p.add_argument(_flag(f.name), dest=f.name, type=float, default=None, help=help_text)
        else:
            p.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text)

"""The ``streamavatar`` command line.

Each feature registers its own subcommands from its own module (listed in :data:`COMMAND_MODULES`), so the
CLI grows without one file knowing every command. Bad input ends with exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from streamavatar.errors import UserInputError

#: Modules that define ``register(tree: CommandTree) -> None``.
COMMAND_MODULES: tuple[str, ...] = (
    "streamavatar.streaming.cli",
    "streamavatar.streaming.doctor",
    "streamavatar.bench.cli",
    "streamavatar.audio.cli",
    "streamavatar.data.cli",
    "streamavatar.serve.cli",
    "streamavatar.training.teacher_cli",
    "streamavatar.training.vae_cli",
    "streamavatar.training.distill_cli",
    "streamavatar.training.adversarial_cli",
    "streamavatar.eval.cli",
    "streamavatar.training.judges_cli",
    "streamavatar.integrations.livekit_cli",
    "streamavatar.eval.real_cli",
    "streamavatar.training.sync_real_cli",
)

GROUP_HELP = {
    "bench": "measure speed (real-time factor, first-frame delay, per-chunk time, memory)",
    "data": "make and inspect training data",
    "train": "train the VAE, the teacher, the streaming student",
    "sample": "sample from trained models",
    "eval": "evaluate generated videos",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (temporary outputs are removed)."""


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class CommandTree:
    """Hands out sub-parsers for top-level commands and command groups (``bench stream``, ``train vae``…)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def command(self, name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        """A top-level command ``streamavatar NAME``."""
        p = self._top.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def subcommand(self, group: str, name: str, help: str,
                   func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        """A command ``streamavatar GROUP NAME``; the group is created on first use."""
        if group not in self._groups:
            desc = GROUP_HELP.get(group, group)
            gp = self._top.add_parser(group, help=desc, description=desc)
            gp.set_defaults(func=lambda _a, _gp=gp: _print_help(_gp))
            self._groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="COMMAND",
                                                    parser_class=OneLineParser)
        p = self._groups[group].add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command."""
    parser = OneLineParser(prog="streamavatar",
                           description="Real-time interactive avatar video from one image and live audio.")
    from streamavatar import __version__

    parser.add_argument("--version", action="version", version=f"streamavatar {__version__}")
    tree = CommandTree(parser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(tree)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamavatar`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    in_main = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    if in_main:
        signal.signal(signal.SIGTERM, _raise_terminated)  # a SIGTERM unwinds like Ctrl-C (exit status 143)
    try:
        return int(args.func(args) or 0)
    except (UserInputError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"streamavatar: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("streamavatar: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("streamavatar: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

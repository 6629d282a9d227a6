"""Command-line flags generated from config dataclasses: each default lives once, in the dataclass.

``add_config_flags(parser, TeacherTrainConfig, {"lr": {}, "max_minutes": {"flag": "--minutes"}})`` adds
``--lr`` and ``--minutes`` whose defaults, types and ``(default …)`` help come from the dataclass fields;
:func:`config_from_args` builds the dataclass back from the parsed namespace (fields without a flag keep their
defaults, fields given in ``fixed`` are set explicitly).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from streamavatar.cli_args import positive_float, positive_int


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    t = hints[name]
    if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        t = args[0] if len(args) == 1 else str
    return t


def add_config_flags(parser: argparse.ArgumentParser, cls: type, specs: dict[str, dict[str, Any]]) -> None:
    """Add one flag per entry of ``specs`` (field name → options) with the field's default.

    Options: ``flag`` (default ``--field-name``), ``help``, ``choices``, ``positive`` (positive int/float
    check), ``type`` (override), ``required``."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name, spec in specs.items():
        f = by_name[name]
        spec = dict(spec)
        flag = spec.pop("flag", "--" + name.replace("_", "-"))
        has_default = f.default is not dataclasses.MISSING
        default = f.default if has_default else None
        kind = spec.pop("type", None) or _field_type(cls, name)
        if spec.pop("positive", False):
            kind = positive_int(flag) if kind is int else positive_float(flag)
        help_text = spec.pop("help", None)
        if has_default and default is not None and help_text is not None:
            help_text = f"{help_text} (default {default})"
        elif has_default and default is not None:
            help_text = f"default {default}"
        required = spec.pop("required", not has_default)
        parser.add_argument(flag, dest=name, type=kind, default=default, required=required, help=help_text,
                            **spec)


def config_from_args(cls: type, args: argparse.Namespace, **fixed: Any):
    """``cls`` from the namespace entries named like its fields (plus ``fixed``)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(fixed)
    return cls(**values)

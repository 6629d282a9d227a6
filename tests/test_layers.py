"""The package's layers hold: every module's imports (module level and inside functions) are walked.

* ``models/`` and ``diffusion/`` import nothing above them (only the shared base modules and each other,
  ``diffusion`` → ``models`` but not back);
* ``eval/`` only measures: it never imports ``training/``;
* ``serve/`` reaches the model only through the engine's public API (``streamavatar.load``); of the audio layer
  it uses the PCM reader and the queue a session holds its audio in (one streaming-audio path, #17);
* no import cycles between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "streamavatar"
#: Modules every layer may import.
BASE = {"streamavatar.constants", "streamavatar.config", "streamavatar.errors", "streamavatar.atomic",
        "streamavatar.reference_image", "streamavatar.hardware"}
#: layer → the layers (sub-packages of streamavatar) its modules may import, besides BASE and itself.
ALLOWED = {
    "models": set(),
    "diffusion": {"models"},
    "serve": {""},  # "" = the package root, i.e. ``streamavatar.load``
}
#: layer → single modules of other layers its modules may import as well.
ALLOWED_MODULES = {"serve": {"streamavatar.audio.io", "streamavatar.audio.queue"}}
#: layer → layers it must never import.
FORBIDDEN = {"eval": {"training", "serve", "bench", "cli"}}


def _module_names() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods


def _imports(path: Path, name: str, mods: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (the longest existing module prefix of each imported name)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` imports mod
            cands = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        else:
            continue
        for c in cands:
            while c and c not in mods:
                c = c.rpartition(".")[0]
            if c and c != name:
                out.add(c)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _module_names()
    return {n: _imports(p, n, mods) for n, p in mods.items()}


def layer(module: str) -> str:
    """``streamavatar.models.dit`` → ``models``; top-level modules are their own layer; the root is ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (package ``__init__`` modules left out: they
    re-export their children by design)."""
    g = {n: {t for t in ts if t in graph and not _is_package(t)} for n, ts in graph.items() if not _is_package(n)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # iterative depth is small (a few hundred modules)
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return found


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / Path(*name.split(".")) / "__init__.py").is_file()


def test_lower_layers_import_nothing_above_them():
    graph = import_graph()
    bad = []
    for mod, targets in graph.items():
        lay = layer(mod)
        if lay not in ALLOWED:
            continue
        ok = ALLOWED[lay] | {lay}
        for t in targets:
            if t not in BASE and layer(t) not in ok and t not in ALLOWED_MODULES.get(lay, ()):
                bad.append(f"{mod} -> {t}")
    assert not bad, bad


def test_eval_never_imports_training():
    graph = import_graph()
    bad = [f"{m} -> {t}" for m, ts in graph.items() for t in ts
           if layer(m) in FORBIDDEN and layer(t) in FORBIDDEN[layer(m)]]
    assert not bad, bad


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_walker_sees_function_level_imports():
    graph = import_graph()
    # streamavatar/__init__.py imports the engine inside __getattr__
    assert "streamavatar.streaming.pipeline" in graph["streamavatar"]

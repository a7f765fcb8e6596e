"""Digests of the code that computes a run's numbers, recorded in each ``metrics.json``.

A result is stale when the code that computed it changed, not only its config (the recorded run
config catches that). The parts below are everything a trained model's metrics depend on beyond
its settings: the data as prepared, the model, the task (batches, loss, evaluation), the pruning,
the training loop and optimizers, decoding and scoring (BLEU), and the core modules a run goes
through (the schedule, the NNZ count, the random streams, the runner and its torchrun worker). Left out, because they do
not change a run's numbers: the config code (its output, the run config, is recorded and
compared whole), reporting (tables are recomputed from ``metrics.json``), the storage and latency
measurements (their own files), the cost plan (costs.py estimates, trains nothing), the copy of a twin run's training (reuse.py:
it computes no number, and the twin's own files are checked as any run's), and
paths, the CLI, provenance, atomic writes, the dry-run folder cleanup and this module.

Each part's digest is a sha256 over its files' paths and their syntax trees without docstrings:
a change of comments, docstrings or layout keeps the digest, any change of code changes it. The
tree is serialised by :func:`_canonical`, which leaves out empty fields, so the digest does not
depend on which Python version parsed it as long as the code uses no syntax newer versions add.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: part -> the package-relative files or folders it covers (see the module docstring)
RESULT_CODE: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "models": ("models",),
    "tasks": ("tasks",),
    "pruning": ("pruning",),
    "training": ("training",),
    "translation": ("translation",),
    "core": ("runner.py", "worker.py", "schedule.py", "counting.py", "seeding.py"),
}
#: what does not change a run's numbers (the module docstring says why); every module of the
#: package is in exactly one of the two lists (tests/test_code_digest.py), so a new one is classified
NOT_RESULT_CODE: tuple[str, ...] = (
    "__init__.py", "config.py", "config", "reporting", "footprint", "layout.py", "workflow.py",
    "cli.py", "provenance.py", "atomic.py", "curves.py", "code_digest.py", "costs.py",
    "workdir.py", "reuse.py",
)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return body[1:]
    return body


def _canonical(node) -> str:
    """A stable text of an AST: node types and non-empty fields, no positions, no docstrings."""
    if isinstance(node, ast.AST):
        fields = []
        for name, value in ast.iter_fields(node):
            if name == "body" and isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                                    ast.AsyncFunctionDef)):
                value = _without_docstring(value)
            if value is None or value == []:
                continue
            fields.append(f"{name}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(v) for v in node) + "]"
    return repr(node)


def _files(part: str, root: Path) -> list[Path]:
    files: list[Path] = []
    for entry in RESULT_CODE[part]:
        path = root / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def part_digest(part: str, root: Path = PACKAGE_DIR) -> str:
    """sha256 (hex) of one part's code, as described in the module docstring."""
    h = hashlib.sha256()
    for path in _files(part, root):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(_canonical(tree).encode() + b"\0")
    return h.hexdigest()


@functools.cache
def _package_digests() -> tuple[tuple[str, str], ...]:
    return tuple((part, part_digest(part)) for part in RESULT_CODE)


def code_digests() -> dict[str, str]:
    """``{part: digest}`` of the installed package's code that computes a run's numbers (read
    once per process)."""
    return dict(_package_digests())


def stale_parts(recorded: dict | None, current: dict[str, str] | None = None) -> list[str]:
    """The parts whose recorded digest differs from today's code (every part when none was
    recorded), sorted."""
    current = code_digests() if current is None else current
    recorded = recorded or {}
    return sorted(p for p in set(current) | set(recorded) if recorded.get(p) != current.get(p))

"""Where a number came from: config, code version, library versions, machine and time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import socket
import subprocess
import sys

from gradprune.code_digest import code_digests
from gradprune.config import PROJECT_ROOT, config_hash

_PACKAGES = ("torch", "torchvision", "numpy", "safetensors", "sacrebleu", "sentencepiece", "snakemake")


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout, or ('unknown', False) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return commit, bool(status)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "gradprune": _version("gradprune")}
    for name in _PACKAGES:
        out[name] = _version(name)
    return out


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def device_description(device) -> str:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(config: dict, device, started: str, preset: dict | None = None) -> dict:
    """``config``: what determines the run (hashed); ``preset``: the preset's name and the files
    and overrides the workflow's config was composed from (recorded beside it, not hashed)."""
    commit, dirty = git_commit()
    preset = preset or {}
    return {
        "config_hash": config_hash(config),
        "config": config,
        "preset": preset.get("preset"),
        "sources": preset.get("sources", []),
        "commit": commit,
        "dirty": dirty,
        "code": code_digests(),  # of the code that computes the numbers (gradprune.code_digest)
        "versions": versions(),
        "device": device_description(device),
        "host": socket.gethostname(),
        "started": started,
        "finished": now(),
    }

"""Where a number came from: config, code version, library versions, machine and time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

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
        "cpu": cpu_numerics(),
        "host": socket.gethostname(),
        "started": started,
        "finished": now(),
    }


# -- what decides CPU float results ------------------------------------------------------------

# Environment variables that change which CPU kernels run or how many threads split a reduction:
# ATen's dispatch level, oneDNN's ISA cap and fp-math mode, MKL's code path (CBWR) and threads.
CPU_NUMERICS_ENV = (
    "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
)


def cpu_numerics() -> dict:
    """What decides a run's CPU float results besides the code and the seed (same values on the
    same machine, commit and thread count give bitwise equal runs; another CPU may dispatch other
    kernels): the kernels' ISA level torch dispatches to, thread counts, the oneDNN and BLAS
    libraries torch was built with, the CPU model and the environment variables that override
    them. torch has no public getter for the library versions: they are read from the text of
    ``torch.__config__.show()`` / ``parallel_info()``, None where a build does not print them."""
    import torch

    build = torch.__config__.show()
    parallel = torch.__config__.parallel_info()
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "parallel_backend": _match(r"ATen parallel backend: (.+)", parallel),
        "torch_build": torch.__version__,
        "onednn": _match(r"MKL-DNN (v[^\s]+)", build) if torch.backends.mkldnn.is_available() else None,
        "onednn_enabled": bool(torch.backends.mkldnn.enabled),
        "blas": _match(r"BLAS_INFO=([^,\s]+)", build),
        "blas_version": _match(r"(Math Kernel Library Version [^\n]+|OpenBLAS[^\n]*)", build),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "env": {k: os.environ[k] for k in CPU_NUMERICS_ENV if k in os.environ},
    }


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what ``platform`` says)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return _match(r"^model name\s*:\s*(.+)$", text) or platform.processor() or platform.machine()


def _match(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else None

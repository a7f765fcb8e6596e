"""Running the real Snakefile on a preset in a temporary working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
SHARED_MIRROR = Path(os.environ.get("GRADPRUNE_TEST_MIRROR") or ROOT.parent / "shared" / "data" / "mirror")


def require_mirror(path: Path) -> Path:
    """``path`` in the real-data mirror. A test without it is skipped on a developer's machine but
    fails under CI=true: CI has the mirror, and a silent skip there would hide every real-data test."""
    if not path.exists():
        message = f"{path} not found: no real-data mirror (set GRADPRUNE_TEST_MIRROR to its folder)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    return path


def load_preset(name: str) -> dict:
    path = ROOT / ("config.yaml" if name == "mini" else f"presets/{name}.yaml")
    return yaml.safe_load(path.read_text())


def write_registry(path: Path, entries) -> Path:
    rows = ["dataset\tfile\tbytes\tsha256\turl\tmember"]
    rows += [f"{e.dataset}\t{e.file}\t{e.bytes}\t{e.sha256}\t{e.url}\t{e.member or ''}" for e in entries]
    path.write_text("\n".join(rows) + "\n")
    return path


def snakemake(workdir: Path, config: dict, *args: str, timeout: int = 600, env: dict | None = None):
    """Run snakemake on ``config`` in ``workdir``; returns the CompletedProcess (never raises)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    run_env = {k: v for k, v in os.environ.items() if k != "GRADPRUNE_DATA_MIRROR"}
    run_env.update(env or {})
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
           "--configfile", str(cfg), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env, check=False)


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

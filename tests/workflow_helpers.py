"""Running the real Snakefile: from a copy of the repository root with the command a user types
(:func:`repo_copy`, :func:`run_snakemake`), or on a config built in Python in a temporary working
directory (:func:`snakemake`, for tests of one mechanism)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
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


def validated_experiment(preset: str, name: str, **changes) -> dict:
    """Experiment ``name`` of ``preset`` with ``changes`` deep-merged into it (``train={...}``),
    validated: the schema's defaults filled in, as the package's code receives an experiment."""
    from gradprune.config import deep_merge, only_experiments, validate_config

    config = only_experiments(load_preset(preset), [name])
    config["experiments"][name] = deep_merge(config["experiments"][name], changes)
    return validate_config(config)["experiments"][name]


def validated_case(experiment: dict, size) -> dict:
    """A hand-written experiment (family, dataset, model, train, ...) as the package receives one:
    validated, the schema's defaults filled in (the code reads no defaults of its own)."""
    from gradprune.config import validate_config

    exp = {"large": {"size": size, "sparsities": [0.0]},
           "pruning": {"begin_step": 1, "frequency": 1, "n_updates": 1}, **experiment}
    config = {"preset": "test", "seeds": [0], "device": "cpu", "experiments": {"case": exp}}
    return validate_config(config)["experiments"]["case"]


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


def repo_copy(dest: Path) -> Path:
    """A copy of the files a checkout holds (tracked, and untracked ones git does not ignore)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():  # a file deleted in the work tree is still listed until committed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(repo: Path, *args: str, timeout: int = 900, env: dict | None = None):
    """``snakemake <args>`` run in the repository root ``repo``, as the README runs it."""
    run_env = {k: v for k, v in os.environ.items() if k != "GRADPRUNE_DATA_MIRROR"}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=repo,
                          capture_output=True, text=True, timeout=timeout, env=run_env, check=False)


def planned_jobs(proc) -> Counter:
    """Jobs per rule of a ``snakemake -n`` run (its job-count table); empty when nothing to do."""
    text = proc.stdout + proc.stderr
    table = text.split("job ", 1)[1] if "\njob " in text or text.startswith("job ") else ""
    return Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
                    if rule != "total"})


def planned_runs(proc) -> set[str]:
    """The run folders (results/<exp>/<model>-<size>/sparsity-<s>/seed-<n>) a dry run trains."""
    text = proc.stdout + proc.stderr
    return set(re.findall(r"output: (results/[^/]+/[^/]+/sparsity-[^/]+/seed-\d+)/model\.safetensors",
                          text))


def planned_job_blocks(proc) -> list[dict]:
    """Every job a ``snakemake -n`` run (without --quiet) prints: ``{"rule", "wildcards",
    "resources", "priority", "threads"}``, wildcards and resources as ``{name: text}``; Snakemake
    leaves out a priority of 0 and a single thread."""
    text = proc.stdout + proc.stderr
    jobs = []
    for block in re.split(r"^(?:local)?rule ", text, flags=re.MULTILINE)[1:]:
        rule, _, body = block.partition(":\n")
        fields = dict(re.findall(r"^    (\w+): (.*)$", body.split("\n\n", 1)[0], re.MULTILINE))

        def pairs(line: str) -> dict[str, str]:
            return dict(p.split("=", 1) for p in line.split(", ") if "=" in p)

        jobs.append({"rule": rule.strip(), "wildcards": pairs(fields.get("wildcards", "")),
                     "resources": pairs(fields.get("resources", "")),
                     "priority": int(fields.get("priority", 0)),
                     "threads": int(fields.get("threads", 1))})
    return jobs

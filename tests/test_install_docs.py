"""The README's CPU-only install: the versions it asks PyTorch's CPU index for are the ones
pyproject.toml pins, and those pins accept the CPU build's `+cpu` local version (PEP 440), so
`pip install -e .` keeps it instead of fetching the CUDA build."""

from __future__ import annotations

import re
import shlex
import tomllib

from packaging.requirements import Requirement
from tests.workflow_helpers import ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def readme_cpu_install() -> list[str]:
    """The words of the README command that installs from PyTorch's CPU index."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if CPU_INDEX in line]
    assert len(lines) == 1, f"one README command installs from {CPU_INDEX}, found {len(lines)}"
    step = next(part for part in lines[0].split("&&") if CPU_INDEX in part)
    return shlex.split(step)


def test_the_cpu_install_asks_for_the_pinned_versions_and_the_pins_accept_them():
    words = readme_cpu_install()
    assert words[words.index("--index-url") + 1] == CPU_INDEX
    asked = dict(w.split("==") for w in words if "==" in w)
    assert set(asked) == {"torch", "torchvision"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for name, version in asked.items():
        assert pins[name].specifier.contains(version), (name, version, pins[name])
        assert pins[name].specifier.contains(f"{version}+cpu"), (name, pins[name])


def test_the_cpu_install_is_followed_by_the_quick_start_install():
    text = (ROOT / "README.md").read_text()
    line = next(line for line in text.splitlines() if CPU_INDEX in line)
    assert re.search(r"&& \.venv/bin/pip install -e '\.\[workflow\]'$", line)

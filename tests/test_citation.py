"""Licence, citation and version: the files a user reuses and cites the project by agree.

``cffconvert`` pins jsonschema < 4 (the project pins 4.26), so it lives in its own tool
environment: ``.ci/run`` installs it in ``.venv-tools`` and CI must never skip these checks
(``CI=true`` turns a missing tool into a failure)."""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

import gradprune

ROOT = Path(__file__).resolve().parents[1]
CFF = ROOT / "CITATION.cff"


def cffconvert() -> str:
    for candidate in (os.environ.get("GRADPRUNE_CFFCONVERT"), ROOT / ".venv-tools" / "bin" / "cffconvert",
                      shutil.which("cffconvert")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    message = ("cffconvert not found: `python3 -m venv .venv-tools && .venv-tools/bin/pip install "
               "cffconvert==2.0.0` (as .ci/run does)")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_citation_file_is_valid_cff():
    proc = subprocess.run([cffconvert(), "--validate", "-i", str(CFF)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_readme_shows_the_bibtex_cffconvert_produces():
    proc = subprocess.run([cffconvert(), "-f", "bibtex", "-i", str(CFF)], capture_output=True,
                          text=True, check=True)
    readme = (ROOT / "README.md").read_text()
    assert proc.stdout.strip() in readme, "README's citation BibTeX differs from cffconvert's"


def test_citation_names_the_paper_it_reproduces():
    cff = yaml.safe_load(CFF.read_text())
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("To prune, or not to prune")
    assert [a["family-names"] for a in paper["authors"]] == ["Zhu", "Gupta"]
    assert paper["year"] == 2017
    assert {i["value"] for i in paper["identifiers"]} == {"arXiv:1710.01878"}


def test_one_version_everywhere():
    """The version lives in gradprune/__init__.py; pyproject reads it, the citation and the
    changelog's newest release repeat it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gradprune.__version__"}
    cff = yaml.safe_load(CFF.read_text())
    assert str(cff["version"]) == gradprune.__version__
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$",
                          (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert releases, "CHANGELOG.md has no release heading '## [x.y.z] - YYYY-MM-DD'"
    assert releases[0][0] == gradprune.__version__
    assert str(cff["date-released"]) == releases[0][1]


def test_every_release_says_what_a_rerun_changes():
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = re.split(r"^## \[", text, flags=re.MULTILINE)[1:]
    assert sections
    for section in sections:
        assert "### Rerun changes" in section, f"release {section.split(']')[0]} lacks 'Rerun changes'"


def test_licence_file_matches_the_declared_licence():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "MIT"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in licence
    assert yaml.safe_load(CFF.read_text())["license"] == "MIT"

"""`snakemake --report` as the user types it: what it needs is installed with the `workflow` extra,
the whole report and a report of one experiment build (the other experiments untrained), and the
landing page shows each experiment's metric-vs-NNZ figure inline, not a link to it."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from tests.workflow_helpers import ROOT, planned_jobs, run_snakemake

EXP = "mobilenet-fmnist"
FIGURE = f"results/figures/{EXP}_metric_vs_nnz.png"


def landing_of(html_file: Path) -> str:
    """The landing page's HTML, as the report stores it (a JSON string in the page's script)."""
    return json.loads(re.search(r"var workflow_desc = (.*);\n", html_file.read_text()).group(1))


def inline_images(landing: str) -> dict[str, bytes]:
    """alt text -> decoded bytes of every image embedded in the landing page."""
    return {alt: base64.b64decode(data) for alt, data in
            re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', landing)}


def _closure(requirements: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    """The installed distributions these requirement strings bring in, transitively."""
    seen: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        spec, extra = todo.pop()
        req = Requirement(spec)
        env_ok = req.marker is None or any(
            req.marker.evaluate({"extra": e}) for e in (extra or ("",)))
        name = req.name.lower().replace("_", "-")
        if not env_ok or name in seen:
            continue
        seen.add(name)
        if name == "gradprune":
            continue
        todo += [(r, tuple(req.extras)) for r in metadata.requires(name) or []]
    return seen


def test_what_the_report_needs_comes_with_the_workflow_extra():
    """The packages Snakemake's report code says it needs ("Python package X must be installed to
    create reports") are dependencies of `pip install -e '.[workflow]'`, the README's install."""
    report_code = Path(metadata.distribution("snakemake").locate_file("snakemake/report"))
    needed = {m.lower() for p in report_code.rglob("*.py")
              for m in re.findall(r"Python package (\S+) must be installed", p.read_text())}
    assert needed >= {"pygments", "jinja2"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _closure(project["dependencies"] + project["optional-dependencies"]["workflow"])
    assert needed <= installed, f"snakemake --report needs {sorted(needed - installed)}"


@pytest.mark.slow
def test_the_whole_report_shows_each_figure_inline(finished_test_run):
    repo, preset_args, _ = finished_test_run
    proc = run_snakemake(repo, "--report", "report.html", *preset_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    landing = landing_of(repo / "report.html")
    assert "System Message" not in landing  # docutils' marker of a broken include or directive
    assert inline_images(landing) == {f"{EXP}: the task metric against NNZ":
                                      (repo / FIGURE).read_bytes()}
    assert f"<h1>{EXP}</h1>" in landing


@pytest.mark.slow
def test_a_report_of_one_experiment_builds_without_training_the_others(finished_test_run):
    """A preset of two experiments where only one was trained (an overlay adds the README's
    example experiment): naming the trained one's landing section plans nothing and reports it;
    the report holds that experiment alone."""
    repo, preset_args, _ = finished_test_run
    overlay = repo / "second-experiment.yaml"
    second = yaml.safe_load((ROOT / "presets/test.yaml").read_text())["experiments"][EXP]
    overlay.write_text(yaml.safe_dump({"experiments": {"mobilenet-fmnist-late": second}}))
    args = (*preset_args, overlay.name)
    target = f"results/report/{EXP}.rst"
    try:
        whole = run_snakemake(repo, "-n", *args)
        assert planned_jobs(whole)["train"] == 4  # the second experiment is not trained
        plan = run_snakemake(repo, "-n", target, *args)
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert planned_jobs(plan) == {}, plan.stdout[-3000:]
        proc = run_snakemake(repo, "--report", "one.html", target, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        overlay.unlink()
    landing = landing_of(repo / "one.html")
    assert "System Message" not in landing
    assert inline_images(landing) == {f"{EXP}: the task metric against NNZ":
                                      (repo / FIGURE).read_bytes()}
    assert "mobilenet-fmnist-late" not in landing
    html = (repo / "one.html").read_text()
    assert "mobilenet-fmnist-late" not in html  # no file of the untrained experiment
    assert f"{EXP}_headline.csv" in html and "metrics.json" in html

"""The report landing page's sections (gradprune.reporting.landing) as docutils renders them."""

from __future__ import annotations

import base64
import re

import pandas as pd
from docutils.core import publish_parts
from tests.test_reporting import mobilenet_runs, ptb_runs

from gradprune.reporting import collect_runs, write_landing, write_tables
from gradprune.reporting.pairing import verdict_text

# the 8-byte PNG signature and a few bytes more: the section embeds whatever the figure file holds
FIGURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50


def render(rst: str, experiments) -> str:
    """The section as the report's landing page renders it: Snakemake appends a link target for
    every report file, and the page references the figures and tables by them."""
    targets = "\n".join(f".. _{e}_{kind}: javascript:app.showResultInfo('{e}_{kind}')"
                        for e in experiments
                        for kind in ("metric_vs_nnz.png", "headline.csv"))
    return publish_parts(rst + "\n" + targets, writer="html",
                         settings_overrides={"report_level": 2, "halt_level": 2})["body"]


def test_each_section_states_its_verdicts_and_shows_its_figure_inline(tmp_path):
    files = (mobilenet_runs(tmp_path / "runs", seeds=(0, 1), nnz_50=2_980_000)
             + ptb_runs(tmp_path / "runs"))
    write_tables(files, tmp_path / "tables", compare_with_paper=False)
    (tmp_path / "figure.png").write_bytes(FIGURE)
    experiments = list(dict.fromkeys(collect_runs(files)["experiment"])) + ["gnmt-multi30k"]
    pairs = pd.read_csv(tmp_path / "tables/headline.csv")
    assert len(pairs) == 3
    for exp in experiments:
        headline = tmp_path / "tables" / f"{exp}_headline.csv"
        if not headline.exists():  # an experiment without runs: an empty headline table
            pairs.iloc[:0].to_csv(headline, index=False)
        rst = write_landing(headline, tmp_path / "figure.png", exp, tmp_path / f"{exp}.rst")
        text = rst.read_text()
        assert max(map(len, text.splitlines())) < 10_000  # docutils refuses longer lines
        html = render(text, experiments)
        images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html)
        assert len(images) == 1 and base64.b64decode(images[0][1]) == FIGURE
        assert f"javascript:app.showResultInfo('{exp}_metric_vs_nnz.png')" in html
        mine = pairs[pairs["experiment"] == exp]
        for _, p in mine.iterrows():
            assert verdict_text(p) in html
        if mine.empty:
            assert "lacks one of the roles" in html
        if exp == "mobilenet-fmnist":
            assert "<strong>large-sparse wins</strong>" in html  # the 90 % model over two seeds
            assert "unmatched NNZ (excluded): 1" in html  # the 50 % model (1.15x its partner's NNZ)
        if exp == "lstm-ptb":
            assert "one seed only (large-sparse ahead; no verdict)" in html
        for other in set(experiments) - {exp}:  # a section holds its own experiment only
            assert f"<h1>{other}</h1>" not in html and f"<h2>{other}</h2>" not in html

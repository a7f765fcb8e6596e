"""The report landing page's verdicts (gradprune.reporting.landing) as docutils renders them."""

from __future__ import annotations

import pandas as pd
from docutils.core import publish_parts
from tests.test_reporting import mobilenet_runs, ptb_runs

from gradprune.reporting import collect_runs, write_landing, write_tables
from gradprune.reporting.pairing import verdict_text


def test_landing_states_each_verdict_and_links_the_figures(tmp_path):
    files = (mobilenet_runs(tmp_path / "runs", seeds=(0, 1), nnz_50=2_980_000)
             + ptb_runs(tmp_path / "runs"))
    write_tables(files, tmp_path / "tables", compare_with_paper=False)
    experiments = list(dict.fromkeys(collect_runs(files)["experiment"])) + ["gnmt-multi30k"]
    rst = write_landing(tmp_path / "tables/headline.csv", experiments, tmp_path / "v.rst")
    # Snakemake appends a link target for every report file; the page references the figures
    targets = "\n".join(f".. _{e}_{kind}: javascript:app.showResultInfo('{e}_{kind}')"
                        for e in experiments
                        for kind in ("metric_vs_nnz.png", "headline.csv"))
    html = publish_parts(rst.read_text() + "\n" + targets, writer="html",
                         settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    pairs = pd.read_csv(tmp_path / "tables/headline.csv")
    assert len(pairs) == 3
    for _, p in pairs.iterrows():
        assert verdict_text(p) in html
    assert "<strong>large-sparse wins</strong>" in html  # the 90 % MobileNet over two seeds
    assert "one seed only (large-sparse ahead; no verdict)" in html  # the LSTM, one seed
    assert "unmatched NNZ (excluded): 1" in html  # the 50 % MobileNet (1.15x its partner's NNZ)
    for e in experiments:
        assert f"javascript:app.showResultInfo('{e}_metric_vs_nnz.png')" in html
    assert "lacks one of the roles" in html  # an experiment without pairs says so

# Tables and figures: one job per experiment (its runs only), a summary over all experiments, the
# per-run figures; all carry report captions.
import re

from gradprune.layout import (
    RUN_DIR,
    RUN_FIGURE_DIR,
    RUN_FIGURES_BENCHMARK,
    RUN_FIGURES_LOG,
)
from gradprune.workflow import (
    LANDING,
    TABLE_KINDS,
    all_metrics,
    experiment_metrics,
    landing_inputs,
)

# The experiment wildcard of tables and figures matches the preset's experiments only (so that
# results/tables/headline.csv is never read as an experiment's table).
EXPERIMENTS = "|".join(re.escape(e) for e in config["experiments"])

RUN_FIGURES = ("sparsity_schedule", "training_curves", "lr_sparsity")


rule experiment_tables:
    input:
        lambda wc: experiment_metrics(config, wc.experiment),
    output:
        [
            report(
                f"results/tables/{{experiment}}{kind}.{ext}",
                caption=f"../report/table{kind or '_results'}.rst",
                category="Tables",
                subcategory="{experiment}",
            )
            for kind in TABLE_KINDS
            for ext in ("csv", "md", "tex")
        ],
    log:
        "logs/report/tables_{experiment}.log",
    benchmark:
        "logs/benchmarks/report/tables_{experiment}.tsv"
    wildcard_constraints:
        experiment=EXPERIMENTS,
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        compare_with_paper=config["compare_with_paper"],
        nnz_tolerance=config["headline"]["nnz_tolerance"],
        planned=lambda wc: [r.identity for r in RUNS if r.experiment == wc.experiment],
    script:
        "../../scripts/experiment_tables.py"


rule summary_tables:
    input:
        all_metrics(config),
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../report/table_runs.rst",
            category="Tables",
        ),
        headline=[
            report(
                f"results/tables/headline.{ext}",
                caption="../report/table_headline.rst",
                category="Tables",
                subcategory="all experiments",
            )
            for ext in ("csv", "md", "tex")
        ],
    log:
        "logs/report/summary_tables.log",
    benchmark:
        "logs/benchmarks/report/summary_tables.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        nnz_tolerance=config["headline"]["nnz_tolerance"],
    script:
        "../../scripts/summary_tables.py"


rule experiment_figure:
    input:
        lambda wc: experiment_metrics(config, wc.experiment),
    output:
        report(
            "results/figures/{experiment}_metric_vs_nnz.png",
            caption="../report/metric_vs_nnz.rst",
            category="Figures",
            subcategory="{experiment}",
        ),
        "results/figures/{experiment}_metric_vs_nnz.pdf",
    log:
        "logs/report/figure_{experiment}.log",
    benchmark:
        "logs/benchmarks/report/figure_{experiment}.tsv"
    wildcard_constraints:
        experiment=EXPERIMENTS,
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        compare_with_paper=config["compare_with_paper"],
        nnz_tolerance=config["headline"]["nnz_tolerance"],
    script:
        "../../scripts/experiment_figures.py"


# One experiment's section of the report's landing page (workflow/report/workflow.rst includes the
# sections in the report's DAG): its verdicts and metric-vs-NNZ figure. It needs every file of the
# experiment's part of the report, so naming it builds (and reports) one experiment.
rule experiment_landing:
    input:
        unpack(lambda wc: landing_inputs(config, wc.experiment)),
    output:
        report(
            LANDING,
            caption="../report/landing_section.rst",
            category="Verdicts",
        ),
    log:
        "logs/report/landing_{experiment}.log",
    benchmark:
        "logs/benchmarks/report/landing_{experiment}.tsv"
    wildcard_constraints:
        experiment=EXPERIMENTS,
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/landing.py"


rule run_figures:
    input:
        metrics=f"{RUN_DIR}/metrics.json",
        train_log=f"{RUN_DIR}/train_log.csv",
        eval_log=f"{RUN_DIR}/eval.csv",
        prune_log=f"{RUN_DIR}/prune_log.csv",
    output:
        [
            report(
                f"{RUN_FIGURE_DIR}/{name}.png",
                caption=f"../report/{name}.rst",
                category="Runs",
                subcategory="{experiment}",
                labels={
                    "model": "{model}-{size}",
                    "sparsity": "{sparsity}",
                    "seed": "{seed}",
                    "figure": name,
                },
            )
            for name in RUN_FIGURES
        ],
        [f"{RUN_FIGURE_DIR}/{name}.pdf" for name in RUN_FIGURES],
    log:
        RUN_FIGURES_LOG,
    benchmark:
        RUN_FIGURES_BENCHMARK
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../../scripts/run_figures.py"


rule effective_config:
    # The config as composed from the preset, overlays and --config pairs, and validated.
    output:
        "results/config.yaml",
    log:
        "logs/report/config.log",
    benchmark:
        "logs/benchmarks/report/config.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=dict(config),
    script:
        "../../scripts/write_config.py"

# Tables and figures of every experiment, and the per-run figures; all carry report captions.
from gradprune.workflow import TABLE_KINDS, all_metrics

RUN_FIGURES = ("sparsity_schedule", "training_curves", "lr_sparsity")


rule tables:
    input:
        all_metrics(config),
    output:
        runs=report(
            "results/tables/runs.csv", caption="../report/table_runs.rst", category="Tables"
        ),
        tables=[
            report(
                f"results/tables/{exp}{kind}.{ext}",
                caption=f"../report/table{kind or '_results'}.rst",
                category="Tables",
                subcategory=exp,
            )
            for exp in config["experiments"]
            for kind in TABLE_KINDS
            for ext in ("csv", "md", "tex")
        ],
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
        "logs/report/tables.log",
    benchmark:
        "logs/benchmarks/report/tables.tsv"
    params:
        compare_with_paper=config["compare_with_paper"],
        nnz_tolerance=config["headline"]["nnz_tolerance"],
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/tables.py"


rule experiment_figures:
    input:
        all_metrics(config),
    output:
        [
            report(
                f"results/figures/{exp}_metric_vs_nnz.{ext}",
                caption="../report/metric_vs_nnz.rst",
                category="Figures",
                subcategory=exp,
            )
            for exp in config["experiments"]
            for ext in ("png", "pdf")
        ],
    log:
        "logs/report/experiment_figures.log",
    benchmark:
        "logs/benchmarks/report/experiment_figures.tsv"
    params:
        compare_with_paper=config["compare_with_paper"],
        nnz_tolerance=config["headline"]["nnz_tolerance"],
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/experiment_figures.py"


# The verdicts as rst, included by the report's landing page (workflow/report/workflow.rst).
rule report_landing:
    input:
        "results/tables/headline.csv",
    output:
        "results/report/verdicts.rst",
    log:
        "logs/report/landing.log",
    benchmark:
        "logs/benchmarks/report/landing.tsv"
    params:
        experiments=list(config["experiments"]),
    localrule: True
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/report.yaml"
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
                f"results/figures/{{experiment}}/{{model}}-{{size}}/sparsity-{{sparsity}}/seed-{{seed}}/{name}.png",
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
        [
            f"results/figures/{{experiment}}/{{model}}-{{size}}/sparsity-{{sparsity}}/seed-{{seed}}/{name}.pdf"
            for name in RUN_FIGURES
        ],
    log:
        "logs/report/{experiment}/{model}-{size}/sparsity-{sparsity}/seed-{seed}.log",
    benchmark:
        "logs/benchmarks/report/{experiment}/{model}-{size}/sparsity-{sparsity}/seed-{seed}.tsv"
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/report.yaml"
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
    params:
        config=dict(config),
    localrule: True
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/write_config.py"

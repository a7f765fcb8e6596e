# What a sparse model costs to store and to run, and which configuration wins for a budget (the
# paper's RQ3 and RQ4; gradprune.footprint). Run folders come from gradprune.layout; every other
# file name comes from gradprune.footprint.paths.
from gradprune.config import experiment_for_size
from gradprune.footprint import paths as fp_paths
from gradprune.layout import RUN_DIR

FP_OUT = fp_paths.experiment_outputs("{experiment}")


rule footprint:
    input:
        unpack(pretrain_inputs),
        weights=f"{RUN_DIR}/model.safetensors",
        metrics=f"{RUN_DIR}/metrics.json",
    output:
        footprint=f"{RUN_DIR}/{fp_paths.FOOTPRINT_JSON}",
    log:
        f"{RUN_DIR}/footprint.log",
    benchmark:
        f"{RUN_DIR}/benchmark_footprint.tsv"
    conda:
        "../../envs/train.yaml"
    threads: resource("threads")
    resources:
        mem_mb=resource("mem_mb"),
        runtime=30,
        gpu=resource("gpu"),
    params:
        run=lambda wc: the_run(wc).to_dict(),
        settings=lambda wc: scores_with(the_run(wc)),
        pruning=lambda wc: experiment_for_size(exp_of(wc), wc.size)["pruning"],
    script:
        "../../scripts/footprint.py"


# One thread, CPU only: the measurement is single-threaded CPU inference.
rule latency:
    input:
        unpack(pretrain_inputs),
        weights=f"{RUN_DIR}/model.safetensors",
        metrics=f"{RUN_DIR}/metrics.json",
    output:
        latency=f"{RUN_DIR}/{fp_paths.LATENCY_JSON}",
    log:
        f"{RUN_DIR}/latency.log",
    benchmark:
        f"{RUN_DIR}/benchmark_latency.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=resource("mem_mb"),
        runtime=30,
    params:
        run=lambda wc: the_run(wc).to_dict(),
        settings=lambda wc: scores_with(the_run(wc)),
        pruning=lambda wc: experiment_for_size(exp_of(wc), wc.size)["pruning"],
        measurement=config["footprint"],
    script:
        "../../scripts/latency.py"


rule footprint_report:
    input:
        unpack(lambda wc: fp_paths.experiment_inputs(config, wc.experiment)),
    output:
        **{
            name: report(
                path,
                caption=f"../report/{fp_paths.caption(name)}.rst",
                category="Footprint",
                subcategory="{experiment}",
            )
            for name, path in FP_OUT.items()
        },
    log:
        "logs/report/{experiment}_footprint.log",
    benchmark:
        "logs/benchmarks/report/{experiment}_footprint.tsv"
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        slack=config["footprint"]["budget_slack"],
    script:
        "../../scripts/footprint_report.py"


# Unstructured and block-sparse variants of one experiment side by side (config
# structure_comparisons; gradprune.footprint.structures).
rule structure_comparison:
    input:
        unpack(lambda wc: fp_paths.comparison_inputs(config, wc.comparison)),
    output:
        **{
            name: report(
                path,
                caption="../report/structure_comparison.rst",
                category="Footprint",
                subcategory="mask structures",
            )
            for name, path in fp_paths.comparison_outputs("{comparison}").items()
        },
    log:
        "logs/report/structures_{comparison}.log",
    benchmark:
        "logs/benchmarks/report/structures_{comparison}.tsv"
    wildcard_constraints:
        comparison=WILDCARDS["experiment"],
    localrule: True
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        experiments=lambda wc: config["structure_comparisons"][wc.comparison],
        slack=config["footprint"]["budget_slack"],
    script:
        "../../scripts/structure_comparison.py"

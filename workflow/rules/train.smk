# Dense training to t0, gradual pruning (or dense / small-dense training) to the end, evaluation.
# Each job's params are its Run (what it is) and the part of its settings that can change what it
# computes (trains_with, scores_with in common.smk), so Snakemake reruns a job exactly when those
# change; the scripts read the full settings (gradprune.config.run_settings) from the config, so
# operational keys (checkpoint_every, log_every, ...) reach a job without rerunning it.
from gradprune.layout import PRETRAIN_DIR, RUN_DIR, TRAINING_OUTPUTS


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        checkpoint=f"{PRETRAIN_DIR}/checkpoint_t0.pt",  # its sha256 is in its header
    log:
        f"{PRETRAIN_DIR}/pretrain.log",
    benchmark:
        f"{PRETRAIN_DIR}/benchmark.tsv"
    priority: PRETRAIN_PRIORITY
    conda:
        "../../envs/train.yaml"
    threads: resource("threads")
    resources:
        mem_mb=resource("mem_mb"),
        runtime=resource("runtime"),
        gpu=job_resource("gpu"),
        nodes=job_resource("nodes"),
        tasks=job_resource("tasks"),
        tasks_per_gpu=job_resource("tasks_per_gpu"),
        gres=job_resource("gres"),
        mpi=job_resource("mpi"),
    params:
        run=lambda wc: pretrain_run(wc).identity,
        settings=lambda wc: trains_with(pretrain_run(wc)),
    script:
        "../../scripts/pretrain.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        **{name: f"{RUN_DIR}/{file}" for name, file in TRAINING_OUTPUTS.items()},
    log:
        f"{RUN_DIR}/train.log",
    benchmark:
        f"{RUN_DIR}/benchmark_train.tsv"
    priority: TRAIN_PRIORITY
    conda:
        "../../envs/train.yaml"
    threads: train_resource("threads")
    resources:
        mem_mb=train_resource("mem_mb"),
        runtime=train_resource("runtime"),
        gpu=train_job_resource("gpu"),
        nodes=train_job_resource("nodes"),
        tasks=train_job_resource("tasks"),
        tasks_per_gpu=train_job_resource("tasks_per_gpu"),
        gres=train_job_resource("gres"),
        mpi=train_job_resource("mpi"),
    params:
        run=lambda wc: the_run(wc).identity,
        settings=lambda wc: trains_with(the_run(wc)),
    script:
        "../../scripts/train.py"


rule evaluate:
    input:
        unpack(pretrain_inputs),
        weights=f"{RUN_DIR}/model.safetensors",
        summary=f"{RUN_DIR}/train_summary.json",
    output:
        metrics=report(
            f"{RUN_DIR}/metrics.json",
            caption="../report/metrics.rst",
            category="Provenance",
            subcategory="{experiment}",
            labels={"run": "{model}-{size} sparsity {sparsity} seed {seed}"},
        ),
    log:
        f"{RUN_DIR}/evaluate.log",
    benchmark:
        f"{RUN_DIR}/benchmark_evaluate.tsv"
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
    script:
        "../../scripts/evaluate.py"

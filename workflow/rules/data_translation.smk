# Prepare rules of the translation family (Multi30k, WMT16): one shared sentencepiece BPE model
# trained on both sides of the training data, encoded ids of every split, raw evaluation text.
from gradprune.layout import PREPARED, RAW
from gradprune.workflow import translation_prepare_inputs, translation_prepare_settings


rule prepare_translation:
    input:
        lambda wc: translation_prepare_inputs(config, wc.dataset),
    output:
        spm=f"{PREPARED}/{{dataset}}/spm.model",
        prepared=f"{PREPARED}/{{dataset}}/data.safetensors",
        text=f"{PREPARED}/{{dataset}}/text.json",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare/{dataset}.tsv"
    wildcard_constraints:
        dataset="multi30k|wmt16",
    priority: DATA_PRIORITY
    conda:
        # the train env: it has sentencepiece (the data env does not)
        "../../envs/train.yaml"
    # One thread for Multi30k: its BPE trains in seconds and gives the same pieces and ids as
    # with two (only the model's recorded num_threads differs). A 2-thread job waits for both
    # cores to be free at once, which on 2 cores held the default run's translation family back
    # for 42 minutes; WMT16's 4.5M pairs do use the second thread.
    threads: lambda wc: 1 if wc.dataset == "multi30k" else 2
    resources:
        mem_mb=lambda wc: 3000 if wc.dataset == "multi30k" else 24000,
        runtime=lambda wc: 20 if wc.dataset == "multi30k" else 240,
    params:
        settings=lambda wc: translation_prepare_settings(config, wc.dataset),
        raw_root=RAW,
    script:
        "../../scripts/prepare_translation.py"

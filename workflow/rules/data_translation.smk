# Prepare rules of the translation family (Multi30k, WMT16): one shared sentencepiece BPE model
# trained on both sides of the training data, encoded ids of every split, raw evaluation text.
from gradprune.layout import PREPARED, RAW
from gradprune.workflow import (
    translation_prepare_inputs,
    translation_prepare_resources,
    translation_prepare_settings,
)


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
    # per dataset (gradprune.workflow.TRANSLATION_PREPARE_RESOURCES says why Multi30k asks for one)
    threads: lambda wc: translation_prepare_resources(wc.dataset)["threads"]
    resources:
        mem_mb=lambda wc: translation_prepare_resources(wc.dataset)["mem_mb"],
        runtime=lambda wc: translation_prepare_resources(wc.dataset)["runtime"],
    params:
        settings=lambda wc: translation_prepare_settings(config, wc.dataset),
        raw_root=RAW,
    script:
        "../../scripts/prepare_translation.py"

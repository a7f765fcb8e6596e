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
    conda:
        # the train env: it has sentencepiece (the data env does not)
        "../../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc: 3000 if wc.dataset == "multi30k" else 24000,
        runtime=lambda wc: 20 if wc.dataset == "multi30k" else 240,
    params:
        settings=lambda wc: translation_prepare_settings(config, wc.dataset),
        raw_root=RAW,
    script:
        "../../scripts/prepare_translation.py"

# Prepare rules of the translation family (Multi30k, WMT16): one shared sentencepiece BPE model
# trained on both sides of the training data, encoded ids of every split, raw evaluation text.
from gradprune.translation.workflow import fetch_unregistered, prepare_inputs, prepare_settings
from gradprune.workflow import PREPARED, RAW


# WMT16 training/dev files have no registry rows yet (unknown sha256): this rule fetches them
# checksum-verified once rows exist, and otherwise fails naming the canonical URL and the fix.
ruleorder: download_wmt16 > download


rule download_wmt16:
    output:
        f"{RAW}/wmt16/{{file}}",
    log:
        "logs/download/wmt16/{file}.log",
    params:
        mirror=config["data"]["mirror"],
        offline=config["data"]["offline"],
        registry=config["data"]["registry"],
    localrule: True
    resources:
        mem_mb=500,
        runtime=120,
    run:
        fetch_unregistered("wmt16", wildcards.file, output[0], params.registry, params.mirror,
                           params.offline)


rule prepare_translation:
    input:
        lambda wc: prepare_inputs(config, wc.dataset),
    output:
        spm=f"{PREPARED}/{{dataset}}/spm.model",
        prepared=f"{PREPARED}/{{dataset}}/data.safetensors",
        text=f"{PREPARED}/{{dataset}}/text.json",
    wildcard_constraints:
        dataset="multi30k|wmt16",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare/{dataset}.tsv"
    params:
        settings=lambda wc: prepare_settings(config, wc.dataset),
        raw_root=RAW,
    threads: 2
    resources:
        mem_mb=lambda wc: 3000 if wc.dataset == "multi30k" else 24000,
        runtime=lambda wc: 20 if wc.dataset == "multi30k" else 240,
    conda:
        # the train env: it has sentencepiece (the data env does not)
        "../../envs/train.yaml"
    script:
        "../../scripts/prepare_translation.py"

# Prepare rules of the language-model family (PTB, WikiText-2): the three splits encoded with the
# training vocabulary (<eos> after every line) into one safetensors file with the vocabulary.
from gradprune.layout import PREPARED
from gradprune.workflow import raw_files


rule prepare_lm:
    input:
        lambda wc: raw_files(config, wc.dataset),
    output:
        f"{PREPARED}/{{dataset}}/corpus.safetensors",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare/{dataset}.tsv"
    wildcard_constraints:
        dataset="ptb|wikitext-2",
    priority: DATA_PRIORITY
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/prepare_lm.py"

# Download (mirror first, checksum verified, never a partial file) and prepare datasets.
from gradprune.layout import PREPARED, RAW
from gradprune.workflow import raw_files


rule download:
    output:
        f"{RAW}/{{dataset}}/{{file}}",
    log:
        "logs/download/{dataset}/{file}.log",
    benchmark:
        "logs/benchmarks/download/{dataset}/{file}.tsv"
    priority: DATA_PRIORITY
    retries: 2
    localrule: True
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        # the registry fixes each file's sha256 (its content); the mirror and offline mode only
        # say where it comes from and are read from the config by the script
        registry=config["data"]["registry"],
    script:
        "../../scripts/download.py"


rule prepare_fashion_mnist:
    input:
        lambda wc: raw_files(config, "fashion-mnist"),  # a function: read only when needed
    output:
        f"{PREPARED}/fashion-mnist/data.safetensors",
    log:
        "logs/prepare/fashion-mnist.log",
    benchmark:
        "logs/benchmarks/prepare/fashion-mnist.tsv"
    priority: DATA_PRIORITY
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/prepare_fashion_mnist.py"


rule prepare_cifar10:
    input:
        lambda wc: raw_files(config, "cifar-10"),
    output:
        f"{PREPARED}/cifar-10/data.safetensors",
    log:
        "logs/prepare/cifar-10.log",
    benchmark:
        "logs/benchmarks/prepare/cifar-10.tsv"
    priority: DATA_PRIORITY
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/prepare_cifar10.py"


rule check_imagenet:
    # ImageNet cannot be downloaded: check the folders named by data.imagenet before any
    # training job starts (every ImageNet job reads this index).
    output:
        f"{PREPARED}/imagenet/index.json",
    log:
        "logs/prepare/imagenet.log",
    benchmark:
        "logs/benchmarks/prepare/imagenet.tsv"
    priority: DATA_PRIORITY
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        root=config["data"]["imagenet"],
    script:
        "../../scripts/check_imagenet.py"

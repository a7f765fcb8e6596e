"""Data layer shared by the vision, language-model and translation families.

registry (what exists, checksums) -> fetch (mirror/URL, verified, atomic) -> readers (pure,
no network): fashion_mnist, cifar10, lm_corpus, parallel_text; archives holds safe extraction ->
prepare, one module per family, which writes the files the tasks read: vision (Fashion-MNIST,
CIFAR-10), lm, translation (sentencepiece, encoded ids, evaluation text), imagenet (the folder
checked and indexed; it cannot be downloaded).
"""

from gradprune.data.archives import extract, read_tar_member
from gradprune.data.errors import (
    ChecksumError,
    DataError,
    FetchError,
    FormatError,
    UnknownDataError,
    UnsafeArchiveError,
)
from gradprune.data.fashion_mnist import FashionMNIST, load_fashion_mnist

# fetch/fetch_all stay in gradprune.data.fetch (re-exporting them here would shadow the module).
from gradprune.data.fetch import ENV_MIRROR, is_verified, resolve_mirror
from gradprune.data.lm_corpus import (
    Corpus,
    Vocabulary,
    batchify,
    get_batch,
    load_lm_dataset,
    load_ptb,
    load_wikitext2,
)
from gradprune.data.parallel_text import load_iwslt17, load_multi30k, load_newstest2014
from gradprune.data.registry import Entry, Registry, default_registry

__all__ = [
    "ENV_MIRROR",
    "ChecksumError",
    "Corpus",
    "DataError",
    "Entry",
    "FashionMNIST",
    "FetchError",
    "FormatError",
    "Registry",
    "UnknownDataError",
    "UnsafeArchiveError",
    "Vocabulary",
    "batchify",
    "default_registry",
    "extract",
    "get_batch",
    "is_verified",
    "load_fashion_mnist",
    "load_iwslt17",
    "load_lm_dataset",
    "load_multi30k",
    "load_newstest2014",
    "load_ptb",
    "load_wikitext2",
    "read_tar_member",
    "resolve_mirror",
]

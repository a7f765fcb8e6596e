"""Downloaded files are re-verified against the registry before a prepare step reads them
(gradprune.data.verify): the flipped byte of issue 23 ("were" -> "werd" in ptb.train.txt)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from tests.fixtures.data_formats import registry_for
from tests.workflow_helpers import ROOT, SHARED_MIRROR, repo_copy, require_mirror, run_snakemake

from gradprune.data.errors import ChecksumError
from gradprune.data.lm import load_lm_corpus
from gradprune.data.verify import verify_downloads

TEXT = b" the company said sales were up\n prices were down\n"


def flip_first_were(path: Path) -> tuple[bytes, bytes]:
    """Turn the first "were" of ``path`` into "werd" (same size); returns (before, after)."""
    before = path.read_bytes()
    i = before.index(b" were ")
    after = before[: i + 4] + b"d" + before[i + 5:]
    path.write_bytes(after)
    return before, after


def test_an_intact_download_passes_and_a_flipped_byte_is_named_with_both_digests(tmp_path):
    path = tmp_path / "ptb" / "ptb.train.txt"
    path.parent.mkdir()
    path.write_bytes(TEXT)
    registry = registry_for("ptb", {"ptb.train.txt": TEXT}, "https://example.invalid")
    verify_downloads([path], registry)  # intact: nothing raised
    before, after = flip_first_were(path)
    assert len(after) == len(before)
    with pytest.raises(ChecksumError) as err:
        verify_downloads([path], registry)
    text = str(err.value)
    assert f"expected sha256 {hashlib.sha256(TEXT).hexdigest()} ({len(TEXT)} bytes)" in text
    assert f"found sha256 {hashlib.sha256(after).hexdigest()} ({len(TEXT)} bytes)" in text
    assert f"`rm {path}`" in text


def test_a_changed_size_is_refused_and_every_bad_file_is_listed(tmp_path):
    files = {"a.txt": b"alpha\n", "b.txt": b"beta\n", "c.txt": b"gamma\n"}
    for name, content in files.items():
        (tmp_path / "ds").mkdir(exist_ok=True)
        (tmp_path / "ds" / name).write_bytes(content)
    registry = registry_for("ds", files, "https://example.invalid")
    (tmp_path / "ds/a.txt").write_bytes(b"alpha\nmore\n")
    (tmp_path / "ds/c.txt").write_bytes(b"gamma?")  # same size, other bytes
    with pytest.raises(ChecksumError) as err:
        verify_downloads(sorted((tmp_path / "ds").iterdir()), registry)
    text = str(err.value)
    assert text.startswith("2 downloaded file(s) no longer match")
    assert "a.txt: expected" in text and "(11 bytes)" in text and "c.txt: expected" in text
    assert "b.txt" not in text


def test_every_step_that_reads_downloads_verifies_them_first():
    """Each rule whose input is under resources/data (the registry's files) runs a script that
    calls verify_downloads before anything else reads them."""
    rules = "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    reading = []
    for block in re.split(r"^rule ", rules, flags=re.MULTILINE)[1:]:
        name = block.split(":", 1)[0]
        inputs = block.split("input:", 1)[1].split("output:", 1)[0] if "input:" in block else ""
        if re.search(r"raw_files\(|prepare_inputs\(|\bRAW\b", inputs):
            script = re.search(r'script:\s*"\.\./\.\./(scripts/\w+\.py)"', block).group(1)
            reading.append((name, script))
    assert {name for name, _ in reading} >= {"prepare_fashion_mnist", "prepare_cifar10",
                                             "prepare_lm", "prepare_translation"}
    for name, script in reading:
        lines = (ROOT / script).read_text().splitlines()
        body = lines[next(i for i, line in enumerate(lines) if line.startswith("with logged_to")) + 1:]
        first = next(line for line in body if not line.strip().startswith("#"))
        assert "verify_downloads(" in first, (
            f"rule {name}: {script} must verify its downloads before anything reads them")


@pytest.mark.slow
def test_a_corrupted_download_stops_the_prepare_and_keeps_nothing(tmp_path):
    """As the issue found it: PTB prepared from the mirror, then one byte of ptb.train.txt flipped
    and the prepare step asked for again. It stops with both digests and the fix, and the corpus
    prepared before is gone; after the fix (delete, rerun) the same corpus comes back."""
    mirror = require_mirror(SHARED_MIRROR / "ptb")
    repo = repo_copy(tmp_path / "repo")
    target = "resources/prepared/ptb/corpus.safetensors"
    env = {"GRADPRUNE_DATA_MIRROR": str(mirror.parent)}
    proc = run_snakemake(repo, "--cores", "1", target, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    streams, vocab = load_lm_corpus(repo / target)
    train = repo / "resources/data/ptb/ptb.train.txt"
    _, after = flip_first_were(train)

    proc = run_snakemake(repo, "--cores", "1", target, env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "ChecksumError" in text and "no longer match the registry" in text
    assert ("expected sha256 fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf "
            "(5101618 bytes)") in text  # the registry's row
    assert f"found sha256 {hashlib.sha256(after).hexdigest()} (5101618 bytes)" in text
    assert "`rm resources/data/ptb/ptb.train.txt`" in text
    assert not (repo / target).exists()  # nothing prepared from it is kept, nor the old corpus

    train.unlink()
    proc = run_snakemake(repo, "--cores", "1", target, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the same corpus (not the same bytes: safetensors writes the metadata keys in a random order)
    again, vocab_again = load_lm_corpus(repo / target)
    assert vocab_again.idx2word == vocab.idx2word and len(vocab.idx2word) == 10_000
    assert all(torch.equal(again[k], streams[k]) for k in ("train", "valid", "test"))

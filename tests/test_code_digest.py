"""gradprune.code_digest: what marks a committed result stale when the code computing it changes."""

from __future__ import annotations

import shutil

import pytest

from gradprune import code_digest
from gradprune.code_digest import (
    NOT_RESULT_CODE,
    PACKAGE_DIR,
    RESULT_CODE,
    code_digests,
    part_digest,
    stale_parts,
)

MODULE = '''"""A docstring."""

import math


def f(x):
    """Its docstring."""
    return math.floor(x * 0.5 + 0.5)  # half up
'''


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.py").write_text(MODULE)
    return tmp_path


def test_comments_docstrings_and_layout_keep_the_digest(tree):
    before = part_digest("models", tree)
    (tree / "models" / "a.py").write_text(
        '"""Another docstring."""\n# a comment\nimport math\n\n\n\ndef f(x):\n    '
        '"""Changed."""\n\n    return math.floor(\n        x * 0.5 + 0.5\n    )\n')
    assert part_digest("models", tree) == before


@pytest.mark.parametrize("old, new", [("0.5 + 0.5", "0.5 + 0.49"), ("floor", "ceil"),
                                      ("def f(x)", "def g(x)"), ("x * 0.5", "0.5 * x")])
def test_any_change_of_code_changes_the_digest(tree, old, new):
    before = part_digest("models", tree)
    (tree / "models" / "a.py").write_text(MODULE.replace(old, new))
    assert part_digest("models", tree) != before


def test_a_new_or_renamed_file_changes_the_digest(tree):
    before = part_digest("models", tree)
    (tree / "models" / "b.py").write_text("X = 1\n")
    added = part_digest("models", tree)
    (tree / "models" / "b.py").rename(tree / "models" / "c.py")
    assert len({before, added, part_digest("models", tree)}) == 3


def test_every_module_of_the_package_is_classified_once():
    def covered(entries, path):
        rel = path.relative_to(PACKAGE_DIR)
        return [e for e in entries if rel.as_posix() == e or rel.parts[0] == e]

    result = [e for entries in RESULT_CODE.values() for e in entries]
    for path in PACKAGE_DIR.rglob("*.py"):
        hits = covered(result, path) + covered(NOT_RESULT_CODE, path)
        assert len(hits) == 1, (f"{path.relative_to(PACKAGE_DIR)}: classify it in "
                                f"gradprune.code_digest (RESULT_CODE or NOT_RESULT_CODE): {hits}")
    for entries in RESULT_CODE.values():
        assert all((PACKAGE_DIR / e).exists() for e in entries), entries


def test_the_package_digest_covers_each_part_and_names_the_stale_ones(tmp_path, monkeypatch):
    today = code_digests()
    assert set(today) == set(RESULT_CODE) and all(len(d) == 64 for d in today.values())
    assert stale_parts(today) == []
    assert stale_parts(None) == sorted(RESULT_CODE)  # recorded before digests existed
    assert stale_parts({**today, "models": "0" * 64}) == ["models"]
    # a copy of the package with one changed line in the pruning code: only that part is stale
    copy = tmp_path / "gradprune"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    selection = copy / "pruning" / "selection.py"
    text = selection.read_text()
    assert "sparsity * numel + 0.5" in text
    selection.write_text(text.replace("sparsity * numel + 0.5", "sparsity * numel + 0.49"))
    changed = {part: part_digest(part, copy) for part in RESULT_CODE}
    assert stale_parts(today, changed) == ["pruning"]


def test_provenance_records_the_digests():
    from gradprune.provenance import provenance

    prov = provenance({"run": {}}, "cpu", "2026-01-01T00:00:00+00:00")
    assert prov["code"] == code_digests() and prov["code"] is not code_digest.code_digests()

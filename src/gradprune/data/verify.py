"""Downloaded files re-verified before a step reads them.

:mod:`gradprune.data.fetch` checks a file's sha256 when it downloads it; a file changed after that
(a flipped byte on disk, an edit, a copy from elsewhere) would otherwise be read as if it were the
registry's, and everything prepared from it would silently differ. So every step that reads
``resources/data`` (the prepare steps) first checks each input against the registry's size and
sha256 here and stops, before writing anything, when one differs. The digest is recomputed each
time rather than cached in a stamp: hashing runs at about 1 GB/s on one core (the largest dataset,
WMT16, is 1.7 GB, against hours of preparing it), and a cache is one more thing that could go
stale.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gradprune.data.errors import ChecksumError
from gradprune.data.fetch import sha256_file
from gradprune.data.registry import Registry, default_registry


def verify_downloads(paths: Iterable[str | os.PathLike], registry: Registry | None = None) -> None:
    """Check every ``<...>/<dataset>/<file>`` in ``paths`` against its registry entry (size and
    sha256); raise one :class:`ChecksumError` listing each file that differs, with both digests
    and the fix."""
    registry = registry or default_registry()
    bad: list[Path] = []
    lines = []
    for path in map(Path, paths):
        entry = registry.get(path.parent.name, path.name)
        size = path.stat().st_size
        digest = sha256_file(path)
        if size != entry.bytes or digest != entry.sha256:
            bad.append(path)
            lines.append(f"  {path}: expected sha256 {entry.sha256} ({entry.bytes} bytes), "
                       f"found sha256 {digest} ({size} bytes)")
    if bad:
        raise ChecksumError(
            f"{len(bad)} downloaded file(s) no longer match the registry "
            "(gradprune/data/registry.tsv), so nothing was prepared from them:\n"
            + "\n".join(lines)
            + "\nThe file changed after it was downloaded and verified. Delete it and rerun: "
            f"`rm {' '.join(map(str, bad))}`; the workflow downloads it again (mirror first) and "
            "checks it. If the publisher really changed the file, check it and update the registry."
        )

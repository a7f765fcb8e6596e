"""Which files each dataset has, their size, sha256 and canonical URL (registry.tsv).

Some files are published only inside an archive (WMT14 newstest2014 lives in test-full.tgz);
their `member` column names the path inside the archive at `url`. Mirrors hold the file itself.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from gradprune.data.errors import UnknownDataError, UnsafeRegistryError

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("registry.tsv")
COLUMNS = ("dataset", "file", "bytes", "sha256", "url", "member")


@dataclass(frozen=True)
class Entry:
    dataset: str
    file: str
    bytes: int
    sha256: str
    url: str
    member: str | None = None  # path inside the archive at `url`, when the file is not served alone

    def __post_init__(self) -> None:
        # Both names are joined to folders (<dest>/<file>, <mirror>/<dataset>/<file>): a name such
        # as "../../x" or "/etc/x" would read or write outside them.
        for kind, name in (("dataset", self.dataset), ("file", self.file)):
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise UnsafeRegistryError(
                    f"registry entry {self.dataset!r}/{self.file!r}: the {kind} name {name!r} is not "
                    "a plain name (no '/', '\\', '..' or absolute path); it would be read or written "
                    "outside its folder. Fix the row in the registry file."
                )

    @property
    def canonical_source(self) -> str:
        """Human-readable canonical location (for error messages)."""
        return f"{self.url} (member {self.member})" if self.member else self.url


class Registry:
    """An immutable table of Entry rows, looked up by (dataset, file)."""

    def __init__(self, entries: list[Entry] | tuple[Entry, ...]):
        self._entries: dict[str, dict[str, Entry]] = {}
        for e in entries:
            if e.file in self._entries.setdefault(e.dataset, {}):
                raise ValueError(f"duplicate registry entry {e.dataset}/{e.file}")
            self._entries[e.dataset][e.file] = e

    @classmethod
    def from_tsv(cls, path: str | Path) -> Registry:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            missing = set(COLUMNS[:5]) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: registry lacks columns {sorted(missing)}")
            try:
                rows = [
                    Entry(
                        dataset=r["dataset"],
                        file=r["file"],
                        bytes=int(r["bytes"]),
                        sha256=r["sha256"].lower(),
                        url=r["url"],
                        member=r.get("member") or None,
                    )
                    for r in reader
                ]
            except UnsafeRegistryError as err:
                raise UnsafeRegistryError(f"{path}: {err}") from None
        return cls(rows)

    def datasets(self) -> list[str]:
        return sorted(self._entries)

    def files(self, dataset: str) -> list[str]:
        return sorted(self._dataset(dataset))

    def entries(self, dataset: str) -> list[Entry]:
        d = self._dataset(dataset)
        return [d[f] for f in sorted(d)]

    def get(self, dataset: str, file: str) -> Entry:
        d = self._dataset(dataset)
        if file not in d:
            raise UnknownDataError(
                f"unknown file {file!r} of dataset {dataset!r}; known files: {', '.join(sorted(d))}"
            )
        return d[file]

    def _dataset(self, dataset: str) -> dict[str, Entry]:
        if dataset not in self._entries:
            raise UnknownDataError(
                f"unknown dataset {dataset!r}; known datasets: {', '.join(self.datasets())}"
            )
        return self._entries[dataset]


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry shipped with the package (loaded once)."""
    global _default
    if _default is None:
        _default = Registry.from_tsv(DEFAULT_REGISTRY_PATH)
    return _default


def get(dataset: str, file: str) -> Entry:
    return default_registry().get(dataset, file)


def files(dataset: str) -> list[str]:
    return default_registry().files(dataset)


def datasets() -> list[str]:
    return default_registry().datasets()

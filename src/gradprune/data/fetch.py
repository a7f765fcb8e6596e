"""Fetch registry files: mirror first, then the canonical URL; verified, atomic, retried.

A file is written to a temporary name in the destination folder (gradprune.atomic) and renamed
only once its size and sha256 match the registry, so an interrupted or corrupt transfer never
leaves a file that looks finished (snakemake and the readers trust any file that exists). A
network error is retried; a local write error (a full disk) is not: it is reported with the path.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from tqdm import tqdm

from gradprune.atomic import atomic_file, remove_leftovers
from gradprune.data.errors import MIRROR_HINT, ChecksumError, FetchError
from gradprune.data.registry import Entry, Registry, default_registry

log = logging.getLogger(__name__)

ENV_MIRROR = "GRADPRUNE_DATA_MIRROR"
CHUNK_BYTES = 1 << 16
PROGRESS_MIN_BYTES = 1 << 20  # no progress bar for small files
RETRY_HTTP_CODES = {408, 425, 429, 500, 502, 503, 504}


class _Unavailable(Exception):
    """This source cannot provide the file (not found, or gave up retrying): try the next one."""


class _Transient(Exception):
    """A network hiccup worth retrying."""


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    """The mirror argument, else $GRADPRUNE_DATA_MIRROR; '' means no mirror."""
    if mirror is None:
        mirror = os.environ.get(ENV_MIRROR)
    return os.fspath(mirror) if mirror else None


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def is_verified(path: str | Path, entry: Entry) -> bool:
    """True when `path` exists with the registry's size and sha256 (size first: it is free)."""
    path = Path(path)
    return (
        path.is_file() and path.stat().st_size == entry.bytes and sha256_file(path) == entry.sha256
    )


def fetch(
    dataset: str,
    file: str,
    dest_dir: str | Path,
    mirror: str | os.PathLike | None = None,
    retries: int = 3,
    offline: bool = False,
    *,
    registry: Registry | None = None,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Make `dest_dir/<file>` a verified copy of registry file (dataset, file) and return its path.

    Sources in order: `<mirror>/<dataset>/<file>` (mirror: a folder, file:// or http(s):// URL;
    default $GRADPRUNE_DATA_MIRROR), then the canonical URL unless `offline` (offline skips only
    the publishers' URLs; an explicit mirror is still used). Network errors are retried `retries`
    times with exponential backoff. Raises ChecksumError or FetchError.
    """
    entry = (registry or default_registry()).get(dataset, file)
    with _ArchiveCache(Path(dest_dir)) as archives:
        return _fetch_entry(
            entry,
            Path(dest_dir),
            resolve_mirror(mirror),
            _Policy(retries, offline, backoff, timeout),
            archives,
        )


def fetch_all(
    dataset: str,
    dest_dir: str | Path,
    mirror: str | os.PathLike | None = None,
    retries: int = 3,
    offline: bool = False,
    *,
    registry: Registry | None = None,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Fetch every file of `dataset` into `dest_dir`; returns {file: path}.

    Files that cannot be obtained are collected and reported in ONE FetchError listing each
    with its canonical URL and how to set a mirror. A checksum mismatch is raised at once.
    """
    reg = registry or default_registry()
    mirror = resolve_mirror(mirror)
    policy = _Policy(retries, offline, backoff, timeout)
    paths: dict[str, Path] = {}
    missing: list[_Missing] = []
    with _ArchiveCache(Path(dest_dir)) as archives:  # one download per archive for all members
        for entry in reg.entries(dataset):
            try:
                paths[entry.file] = _fetch_entry(entry, Path(dest_dir), mirror, policy, archives)
            except _MissingError as e:
                missing.extend(e.missing)
    if missing:
        raise _MissingError(missing, mirror, offline)
    return paths


# --- internals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Policy:
    retries: int
    offline: bool
    backoff: float
    timeout: float


@dataclass(frozen=True)
class _Missing:
    entry: Entry
    tried: tuple[str, ...]


class _MissingError(FetchError):
    def __init__(self, missing: list[_Missing], mirror: str | None, offline: bool):
        self.missing = missing
        lines = [f"could not fetch {len(missing)} file(s):"]
        for m in missing:
            lines.append(
                f"  - {m.entry.dataset}/{m.entry.file}  canonical: {m.entry.canonical_source}"
            )
            lines += [f"      tried {t}" for t in m.tried]
        if offline:
            lines.append("offline mode: the canonical URLs were not tried.")
        if mirror is None:
            lines.append("no mirror is set.")
        lines.append(MIRROR_HINT)
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class _Source:
    description: str
    open: Callable[[], tuple[BinaryIO, int | None]]  # -> (stream, announced length or None)


def _fetch_entry(
    entry: Entry, dest_dir: Path, mirror: str | None, policy: _Policy, archives: _ArchiveCache
) -> Path:
    dest = dest_dir / entry.file  # Entry refuses names that would leave dest_dir
    remove_leftovers(dest)  # the partial download of a killed job
    if dest.exists():
        if is_verified(dest, entry):
            return dest
        log.warning("%s does not match the registry checksum; fetching it again", dest)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    checksum_errors: list[ChecksumError] = []
    for source in _sources(entry, mirror, policy, archives):
        try:
            _retrying(lambda s=source: _copy_verified(s, entry, dest), policy, source.description)
            return dest
        except ChecksumError as e:  # a bad mirror copy should not hide a good canonical one
            log.warning("%s", e)
            checksum_errors.append(e)
            tried.append(f"{source.description}: checksum mismatch")
        except _Unavailable as e:
            tried.append(f"{source.description}: {e}")
    if checksum_errors:
        raise checksum_errors[0]
    raise _MissingError([_Missing(entry, tuple(tried))], mirror, policy.offline)


def _sources(
    entry: Entry, mirror: str | None, policy: _Policy, archives: _ArchiveCache
) -> Iterator[_Source]:
    if mirror is not None:
        yield _mirror_source(mirror, entry, policy)
    if policy.offline:
        return
    if entry.member is None:
        yield _Source(entry.url, lambda: _open_url(entry.url, policy.timeout))
    else:
        yield _Source(
            entry.canonical_source,
            lambda: _open_member(archives.get(entry.url, policy), entry.member),
        )


def _mirror_source(mirror: str, entry: Entry, policy: _Policy) -> _Source:
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        url = "/".join(
            [mirror.rstrip("/"), urllib.parse.quote(entry.dataset), urllib.parse.quote(entry.file)]
        )
        return _Source(f"mirror {url}", lambda: _open_url(url, policy.timeout))
    if parsed.scheme == "file":
        root = Path(urllib.request.url2pathname(parsed.path))
    else:
        root = Path(mirror).expanduser()
    path = root / entry.dataset / entry.file
    return _Source(f"mirror {path}", lambda: _open_local(path))


def _open_local(path: Path) -> tuple[BinaryIO, int | None]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (the caller closes it)
    except OSError as e:
        raise _Unavailable(f"{e.strerror or e}") from e
    return f, os.fstat(f.fileno()).st_size


def _open_url(url: str, timeout: float) -> tuple[BinaryIO, int | None]:
    request = urllib.request.Request(url, headers={"User-Agent": "gradprune-data-fetch"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code in RETRY_HTTP_CODES:
            raise _Transient(f"HTTP {e.code} {e.reason}") from e
        raise _Unavailable(f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Transient(f"{getattr(e, 'reason', None) or e}") from e
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


class _MemberStream(io.RawIOBase):
    """A tar member's stream that also closes its archive when closed."""

    def __init__(self, tf: tarfile.TarFile, stream: BinaryIO):
        super().__init__()
        self.tf, self.stream = tf, stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def close(self) -> None:
        self.tf.close()
        super().close()


def _open_member(archive: Path, member: str) -> tuple[BinaryIO, int | None]:
    try:
        tf = tarfile.open(archive)  # noqa: SIM115 (closed by _MemberStream)
    except (tarfile.TarError, OSError) as e:
        raise _Unavailable(f"cannot open the archive: {e}") from e
    try:
        info = tf.getmember(member)
        stream = tf.extractfile(info)
        if stream is None:
            raise KeyError("not a regular file")
    except (tarfile.TarError, KeyError, OSError) as e:
        tf.close()
        raise _Unavailable(f"cannot read member {member} of the archive: {e}") from e
    return _MemberStream(tf, stream), info.size


def _retrying(action: Callable[[], None], policy: _Policy, what: str) -> None:
    for attempt in range(policy.retries + 1):
        try:
            return action()
        except _Transient as e:
            if attempt == policy.retries:
                raise _Unavailable(f"{e} (gave up after {attempt + 1} attempts)") from e
            delay = policy.backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", what, e, delay)
            time.sleep(delay)


def _copy_verified(source: _Source, entry: Entry, dest: Path) -> None:
    """Copy source into a temp file beside dest, check size+sha256, then rename onto dest."""
    stream, announced = source.open()
    with stream, atomic_file(dest) as out:
        digest, size = _copy_stream(stream, out, announced, desc=entry.file)
        if announced is not None and size < announced:
            raise _Transient(f"connection closed after {size} of {announced} bytes")
        if size != entry.bytes or digest != entry.sha256:
            raise ChecksumError(
                f"checksum mismatch for {entry.dataset}/{entry.file} from {source.description}: "
                f"expected sha256 {entry.sha256} ({entry.bytes} bytes), "
                f"got sha256 {digest} ({size} bytes). The file was not kept. "
                "The source copy is corrupt or was changed: repair or remove the mirror copy, "
                f"or point {ENV_MIRROR} / data.mirror at a good mirror; if the publisher really "
                "changed the file, check it and update gradprune/data/registry.tsv."
            )


def _copy_stream(src: BinaryIO, dst: BinaryIO, total: int | None, desc: str) -> tuple[str, int]:
    """Copy src to dst, returning (sha256 hex, byte count); a progress bar for big files."""
    h = hashlib.sha256()
    size = 0
    small = total is not None and total < PROGRESS_MIN_BYTES
    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI, snakemake logs).
    with tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        leave=False,
        disable=True if small else None,
    ) as bar:
        while True:
            try:
                chunk = src.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
                raise _Transient(f"transfer failed after {size} bytes: {e!r}") from e
            if not chunk:
                break
            h.update(chunk)
            dst.write(chunk)  # a write error (full disk) is no network hiccup: not retried
            size += len(chunk)
            bar.update(len(chunk))
    return h.hexdigest(), size


class _ArchiveCache:
    """Archives downloaded for their members, kept in a temp folder for one fetch call."""

    def __init__(self, dest_dir: Path):
        self.dest_dir = dest_dir
        self.tmpdir: Path | None = None
        self.paths: dict[str, Path] = {}
        self.failures: dict[str, _Unavailable] = {}  # so members of a dead archive fail fast

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def get(self, url: str, policy: _Policy) -> Path:
        if url in self.failures:
            raise self.failures[url]
        if url not in self.paths:
            if self.tmpdir is None:
                self.dest_dir.mkdir(parents=True, exist_ok=True)
                self.tmpdir = Path(tempfile.mkdtemp(prefix=".archives.", dir=self.dest_dir))
            name = Path(urllib.parse.urlparse(url).path).name or "archive"
            path = self.tmpdir / name
            # The archive itself has no registry checksum: its members are verified instead.
            try:
                _retrying(lambda: self._download(url, path, policy), policy, url)
            except _Unavailable as e:
                self.failures[url] = e
                raise
            self.paths[url] = path
        return self.paths[url]

    @staticmethod
    def _download(url: str, path: Path, policy: _Policy) -> None:
        stream, announced = _open_url(url, policy.timeout)
        with stream, atomic_file(path) as out:
            _, size = _copy_stream(stream, out, announced, desc=path.name)
            if announced is not None and size < announced:
                raise _Transient(f"connection closed after {size} of {announced} bytes")

"""Safe, atomic archive extraction (.tgz/.tar.gz/.tar/.zip/.gz) and reading single members."""

from __future__ import annotations

import gzip
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from gradprune.atomic import atomic_dir
from gradprune.data.errors import UnsafeArchiveError

TAR_SUFFIXES = (".tgz", ".tar.gz", ".tar")


def check_member_name(name: str, archive: str | Path) -> None:
    """Refuse absolute names and '..' components: they could write outside the destination."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing it")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing it")


def extract(archive: str | Path, dest: str | Path, overwrite: bool = False) -> Path:
    """Extract `archive` into the folder `dest` and return `dest`.

    Extraction goes into a temporary sibling folder that is renamed to `dest` only once complete,
    so `dest` never holds half an archive. An existing `dest` is an error unless `overwrite`.
    A `.gz` that is not a tar is decompressed to `dest/<name without .gz>`.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite=True to replace it")
    with atomic_dir(dest) as tmp:
        _extract_into(archive, tmp)
    return dest


def _extract_into(archive: Path, out: Path) -> None:
    name = archive.name.lower()
    if name.endswith(TAR_SUFFIXES):
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                check_member_name(m.name, archive)
            # filter='data' also refuses links/devices escaping `out` (defence in depth).
            try:
                tf.extractall(out, filter="data")
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"{archive}: {e}") from e
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                check_member_name(n, archive)
            zf.extractall(out)
    elif name.endswith(".gz"):
        with gzip.open(archive, "rb") as src, open(out / archive.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        raise ValueError(f"{archive}: unsupported archive type (expected .tgz/.tar.gz/.zip/.gz)")


def read_tar_members(archive: str | Path, members: list[str]) -> dict[str, bytes]:
    """The bytes of regular-file members of a (compressed) tar archive, read in one streaming pass
    (a .tgz is decompressed once) without extracting anything to disk."""
    wanted, found, seen = set(members), {}, []
    with tarfile.open(archive, mode="r|*") as tf:
        for info in tf:
            if not info.isfile():
                continue
            seen.append(info.name)
            if info.name in wanted:
                found[info.name] = tf.extractfile(info).read()
                if len(found) == len(wanted):
                    break
    missing = [m for m in members if m not in found]
    if missing:
        shown = ", ".join(seen[:20]) + (" ..." if len(seen) > 20 else "")
        raise KeyError(f"{archive} has no member(s) {missing}; is it the registered archive? "
                       f"It holds: {shown}")
    return found


def read_tar_member(archive: str | Path, member: str) -> bytes:
    """The bytes of one regular-file member of a tar archive (see :func:`read_tar_members`)."""
    return read_tar_members(archive, [member])[member]

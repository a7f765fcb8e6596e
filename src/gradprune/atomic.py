"""Atomic file writes: the one home for "write a temporary file, fsync, rename onto the target".

Readers (Snakemake, a resumed job, a user on the cluster) see either the previous file or the
complete new one, never half a file, whatever kills the writer. Files get the mode the umask gives
(``tempfile.mkstemp`` makes 0600 files the group cannot read). A failed write names the errno and
the path, even when the writer (``torch.save``) buries the ``OSError`` under its own error; a full
disk also names the filesystem and its free space.

Written here rather than taken from a library: ``atomicwrites`` is archived, and the maintained
alternatives neither follow the umask nor fsync the folder.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_FULL = {errno.ENOSPC, errno.EDQUOT}

# Tests crash the writer here: called as fault_hook(stage, path) at each point a write can be
# interrupted ("opened", "write" before each chunk, "written", "synced", "renamed", and the stages
# callers add with fault_point).
fault_hook: Callable[[str, Path], None] | None = None


class WriteError(OSError):
    """A write failed; the message names the error and the path."""


class DiskFullError(WriteError):
    """No space or quota left while writing a file; the message names the path and filesystem."""


def fault_point(stage: str, path: Path) -> None:
    if fault_hook is not None:
        fault_hook(stage, path)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file (read-write, seekable) that becomes ``path`` when the block completes.

    An exception in the block (or a kill) leaves ``path`` as it was; the temporary file is removed
    (after a kill, by :func:`remove_leftovers`).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        guarded = _GuardedFile(open(tmp, "r+b"), path)  # noqa: SIM115 (closed below)
        try:
            yield guarded  # type: ignore[misc]
        except BaseException as err:
            guarded.close_quietly()
            if guarded.error is None:
                raise
            raise _explain(guarded.error, path) from err
        try:
            guarded.flush()
            fault_point("written", path)
            os.fsync(guarded.fileno())
            guarded.close()  # NFS reports some write errors only here
        except OSError as err:
            raise _explain(guarded.error or err, path) from err
        finally:
            guarded.close_quietly()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """The path of an empty temporary file beside ``path``, renamed onto it when the block
    completes: for writers that take a file name (safetensors ``save_file``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create(path, lambda p: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)))
    mode = tmp.stat().st_mode & 0o777  # 0o666 less the umask
    try:
        fault_point("opened", path)
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        os.chmod(tmp, mode)  # a writer may have replaced the file (safetensors' save_file: 0600)
        _fsync(tmp)
        fault_point("synced", path)
        os.replace(tmp, path)
        fault_point("renamed", path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if not isinstance(err, OSError) or isinstance(err, WriteError):
            raise
        raise _explain(err, path) from err


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """An empty temporary folder beside ``path`` that replaces ``path`` when the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create(path, lambda p: os.mkdir(p, 0o777))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporary files a killed writer of ``path`` left beside it; returns them."""
    path = Path(path)
    found = [Path(p) for p in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp")]
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


def filesystem_of(path: str | Path) -> Path:
    """The mount point of the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


def _create(path: Path, make: Callable[[Path], None]) -> Path:
    """A new name ``.<name>.<random>.tmp`` beside path, created by ``make`` (O_EXCL semantics)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():  # some filesystems cannot fsync a folder: the data itself is synced
            raise
    finally:
        os.close(fd)


def _explain(err: OSError, path: Path) -> WriteError:
    """The error of a failed write, naming the path (and, for a full disk, the filesystem)."""
    if isinstance(err, WriteError):
        return err
    reason = err.strerror or str(err)
    if err.errno in _FULL:
        mount = filesystem_of(path.parent)
        free = shutil.disk_usage(mount).free
        return DiskFullError(
            err.errno,
            f"{reason} while writing {path}: the filesystem mounted at {mount} has {free} bytes "
            f"free. Nothing was replaced: the previous {path.name}, if any, is intact. Free some "
            "space (or quota) there and rerun.",
        )
    return WriteError(err.errno, f"{reason} while writing {path}")


class _GuardedFile:
    """The open temporary file; remembers the first OSError of a write, which torch.save turns
    into its own RuntimeError ('enforce fail') without the errno."""

    def __init__(self, fh: BinaryIO, path: Path):
        self._fh, self._path = fh, path
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            fault_point("write", self._path)
            return self._fh.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        try:
            self._fh.flush()
        except OSError as err:
            self.error = self.error or err
            raise

    def close_quietly(self) -> None:
        try:
            self._fh.close()
        except OSError as err:  # a failed final flush: the write already failed or is reported
            self.error = self.error or err

    def __getattr__(self, name):  # read, seek, tell, fileno, readinto, ... of the real file
        return getattr(self._fh, name)


__all__ = [
    "DiskFullError", "WriteError", "atomic_dir", "atomic_file", "atomic_path", "fault_hook", "fault_point",
    "filesystem_of", "remove_leftovers", "write_bytes",
]

"""A dry run with ``--directory`` leaves no folder behind, and paths typed relative to the shell's
folder stay so (:func:`invocation_directory`, :func:`anchor_env_mirror`).

Snakemake creates the folder named by ``--directory`` (and its missing parents) before it reads
the Snakefile, for every command, a dry run included (``WorkdirHandler.change_to``), and puts its
``.snakemake`` bookkeeping in it; it offers no option against that. So the Snakefile calls
:func:`discard_if_nothing_ran` first: when the folder was created by this very process (it is
empty, and changed after the process started) and the command ends without having run a job (a
dry run, or a config refused before any job), the folder and the parents created with it are
removed at exit. A folder that existed before, or that holds anything but ``.snakemake``, is left
alone. (One case is removed that was not created: an empty parent folder that held nothing but
the new one; it is indistinguishable from one Snakemake created.)
"""

from __future__ import annotations

import atexit
import os
import shutil
import urllib.parse
from pathlib import Path

BOOKKEEPING = ".snakemake"


def discard_if_nothing_ran(workflow) -> list[Path]:
    """Register the removal at exit of the working directory Snakemake just created for this
    command; returns the folders that would go (the working directory first), or [] when it
    existed before."""
    if workflow.overwrite_workdir is None:
        return []
    created = created_folders(Path.cwd().resolve(), _process_start())
    if created:
        atexit.register(_remove_unless_jobs_ran, workflow, created)
    return created


def invocation_directory(workflow) -> Path:
    """The folder the command was typed in. With --directory, Snakemake has changed into that
    folder before it reads the Snakefile and keeps no public record of where it came from: the
    shell's $PWD when it leads to the working directory, else the parent from which a relative
    --directory does; the working directory itself when neither tells (or without --directory)."""
    cwd = Path.cwd().resolve()
    workdir = workflow.overwrite_workdir
    if workdir is None:
        return cwd
    pwd = os.environ.get("PWD")
    if pwd and (Path(pwd) / workdir).resolve() == cwd:
        return Path(pwd).resolve()
    if not Path(workdir).is_absolute() and ".." not in Path(workdir).parts:
        for parent in cwd.parents:
            if (parent / workdir).resolve() == cwd:
                return parent
    return cwd


def anchor_env_mirror(base: str | os.PathLike) -> str | None:
    """Make a relative folder in $GRADPRUNE_DATA_MIRROR absolute, read from ``base`` (the folder
    the command was typed in), and return it: jobs read the variable in the working directory,
    which --directory moves, and inherit the absolute value. URLs, absolute paths and an unset
    variable are left as they are. (Here, not in gradprune.data.fetch: where a mirror is found
    changes no trained number, and the data code's digest marks results stale.)"""
    from gradprune.data.fetch import ENV_MIRROR

    mirror = os.environ.get(ENV_MIRROR)
    if not mirror or urllib.parse.urlparse(mirror).scheme in ("http", "https", "file"):
        return mirror
    path = Path(mirror).expanduser()
    if not path.is_absolute():
        os.environ[ENV_MIRROR] = mirror = os.fspath(Path(base) / path)
    return mirror


def created_folders(workdir: Path, since: float) -> list[Path]:
    """``workdir`` and its parents that this process created: empty (``workdir``) or holding only
    the folder created below it, and changed after ``since``; [] when ``workdir`` existed before."""
    if any(workdir.iterdir()) or workdir.stat().st_ctime < since:
        return []
    created = [workdir]
    for parent in workdir.parents:
        if parent.stat().st_ctime < since or [p.name for p in parent.iterdir()] != [created[-1].name]:
            break
        created.append(parent)
    return created


def remove_created(created: list[Path]) -> bool:
    """Remove the working directory ``created[0]`` when it holds nothing but Snakemake's
    bookkeeping, then each parent of ``created`` that is left empty; True when removed."""
    workdir = created[0]
    if not workdir.is_dir() or any(p.name != BOOKKEEPING for p in workdir.iterdir()):
        return False
    shutil.rmtree(workdir)
    for parent in created[1:]:
        try:
            parent.rmdir()  # only an empty folder
        except OSError:
            break
    return True


def _remove_unless_jobs_ran(workflow, created: list[Path]) -> None:
    # No executor: the command stopped before planning (a refused config) or only listed/linted.
    if workflow.executor_plugin is None or workflow.dryrun:
        remove_created(created)


def _process_start() -> float:
    """When this process started, to about a second (psutil reads the boot time in whole
    seconds): a folder made less than a second before the command counts as made by it."""
    import psutil  # a dependency of snakemake

    return psutil.Process().create_time()

"""Registry, fetch (mirror/URL order, checksums, retries, atomicity) and safe extraction,
against a loopback HTTP server serving synthetic files."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from tests.fixtures.data_formats import entry_for, gz, registry_for, tgz_bytes

import gradprune.data.fetch as fetch_mod
from gradprune import atomic
from gradprune.data import registry
from gradprune.data.archives import extract
from gradprune.data.errors import (
    ChecksumError,
    FetchError,
    UnknownDataError,
    UnsafeArchiveError,
    UnsafeRegistryError,
)
from gradprune.data.fetch import ENV_MIRROR, fetch, fetch_all
from gradprune.data.registry import Registry

FILES = {"a.txt": b"alpha\n" * 100, "b.gz": gz(b"bravo\n" * 50)}
FAST = {"backoff": 0.0, "timeout": 5.0}


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv(ENV_MIRROR, raising=False)


@pytest.fixture
def canonical(http_server):
    server = http_server()
    server.files.update({f"/canonical/{f}": c for f, c in FILES.items()})
    return server


@pytest.fixture
def reg(canonical) -> Registry:
    return registry_for("toy", FILES, f"{canonical.url}/canonical")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- registry ------------------------------------------------------------------------------------


def test_registry_lists_datasets_files_and_archive_members():
    assert registry.datasets() == [
        "cifar-10",
        "fashion-mnist",
        "iwslt17",
        "multi30k",
        "ptb",
        "wikitext-2",
        "wmt14",
        "wmt16",
    ]
    assert registry.files("ptb") == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    e = registry.get("fashion-mnist", "train-images-idx3-ubyte.gz")
    assert e.bytes == 26421880 and len(e.sha256) == 64 and e.member is None
    wmt = registry.get("wmt14", "newstest2014-deen-src.en.sgm")
    assert wmt.url == "https://statmt.org/wmt14/test-full.tgz"
    assert wmt.member == "test-full/newstest2014-deen-src.en.sgm"


def test_registry_errors_name_the_unknown_and_list_the_known():
    with pytest.raises(UnknownDataError, match=r"'cifar10'.*fashion-mnist, iwslt17"):
        registry.get("cifar10", "x")
    with pytest.raises(UnknownDataError, match=r"'ptb.tst.txt'.*ptb.test.txt"):
        registry.get("ptb", "ptb.tst.txt")


@pytest.mark.parametrize("column,name", [("file", "../../x"), ("file", "/tmp/x"),
                                         ("file", "sub\\..\\..\\x"), ("dataset", "..")])
def test_registry_names_that_leave_their_folder_are_refused(tmp_path, column, name):
    row = {"dataset": "toy", "file": "a.txt", column: name}
    tsv = tmp_path / "registry.tsv"
    tsv.write_text("dataset\tfile\tbytes\tsha256\turl\n"
                   f"{row['dataset']}\t{row['file']}\t5\t{'0' * 64}\thttp://127.0.0.1:9/x\n")
    with pytest.raises(UnsafeRegistryError) as err:
        Registry.from_tsv(tsv)
    assert str(err.value).startswith(f"{tsv}: registry entry ") and f"{name!r}" in str(err.value)
    assert "outside its folder" in str(err.value)


# --- fetch from the canonical URL ----------------------------------------------------------------


def test_download_verifies_and_returns_path(tmp_path, reg, canonical):
    path = fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    assert path == tmp_path / "a.txt" and path.read_bytes() == FILES["a.txt"]
    assert listing(tmp_path) == ["a.txt"]  # no temp files left
    # Already verified: nothing is downloaded again.
    fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    assert canonical.requests["/canonical/a.txt"] == 1


def test_unverified_existing_file_is_replaced(tmp_path, reg):
    (tmp_path / "a.txt").write_bytes(b"stale")
    assert fetch("toy", "a.txt", tmp_path, registry=reg, **FAST).read_bytes() == FILES["a.txt"]


def test_corrupt_download_is_refused_and_nothing_is_left(tmp_path, reg, canonical):
    canonical.files["/canonical/a.txt"] = FILES["a.txt"].replace(b"alpha", b"alphA")
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumError) as err:
        fetch("toy", "a.txt", dest, registry=reg, **FAST)
    msg = str(err.value)
    expected = hashlib.sha256(FILES["a.txt"]).hexdigest()
    actual = hashlib.sha256(canonical.files["/canonical/a.txt"]).hexdigest()
    assert "toy/a.txt" in msg and expected in msg and actual in msg
    assert f"{canonical.url}/canonical/a.txt" in msg and ENV_MIRROR in msg
    assert listing(dest) == []


# --- mirrors -------------------------------------------------------------------------------------


def test_http_mirror_is_tried_before_the_url(tmp_path, reg, canonical, http_server):
    mirror = http_server()
    mirror.files.update({f"/m/toy/{f}": c for f, c in FILES.items()})
    paths = fetch_all("toy", tmp_path, mirror=f"{mirror.url}/m/", registry=reg, **FAST)
    assert sorted(paths) == sorted(FILES)
    assert mirror.requests == {"/m/toy/a.txt": 1, "/m/toy/b.gz": 1}
    assert sum(canonical.requests.values()) == 0


def test_mirror_without_the_file_falls_back_to_the_url(tmp_path, reg, canonical, http_server):
    mirror = http_server()
    fetch("toy", "b.gz", tmp_path, mirror=mirror.url, registry=reg, **FAST)
    assert mirror.requests["/toy/b.gz"] == 1 and canonical.requests["/canonical/b.gz"] == 1


def test_corrupt_mirror_copy_falls_back_to_a_good_url(tmp_path, reg, canonical):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.txt").write_bytes(b"corrupt")
    path = fetch("toy", "a.txt", tmp_path / "d", mirror=mirror, registry=reg, **FAST)
    assert path.read_bytes() == FILES["a.txt"] and canonical.requests["/canonical/a.txt"] == 1


@pytest.mark.parametrize("form", ["folder", "file-url", "env"])
def test_local_mirror_forms(tmp_path, reg, canonical, monkeypatch, form):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "a.txt").write_bytes(FILES["a.txt"])
    arg = {"folder": str(mirror), "file-url": mirror.as_uri(), "env": None}[form]
    if form == "env":
        monkeypatch.setenv(ENV_MIRROR, str(mirror))
    path = fetch("toy", "a.txt", tmp_path / "d", mirror=arg, offline=True, registry=reg, **FAST)
    assert path.read_bytes() == FILES["a.txt"]
    assert sum(canonical.requests.values()) == 0


def test_offline_without_mirror_lists_every_missing_file(tmp_path, reg, canonical):
    with pytest.raises(FetchError) as err:
        fetch_all("toy", tmp_path, offline=True, registry=reg, **FAST)
    msg = str(err.value)
    assert "2 file(s)" in msg
    for f in FILES:
        assert f"toy/{f}" in msg and f"{canonical.url}/canonical/{f}" in msg
    assert f"{ENV_MIRROR}=" in msg and "data.mirror" in msg and "offline" in msg
    assert sum(canonical.requests.values()) == 0 and listing(tmp_path) == []


def test_fetch_all_reports_only_the_unreachable_files_in_one_error(tmp_path, reg, canonical):
    del canonical.files["/canonical/b.gz"]
    with pytest.raises(FetchError) as err:
        fetch_all("toy", tmp_path, registry=reg, **FAST)
    assert "1 file(s)" in str(err.value) and "toy/b.gz" in str(err.value)
    assert "HTTP 404" in str(err.value)
    assert listing(tmp_path) == ["a.txt"]


# --- retries and interruptions -------------------------------------------------------------------


def test_retries_after_server_errors_then_succeeds(tmp_path, reg, canonical):
    canonical.fail_next["/canonical/a.txt"] = 2
    fetch("toy", "a.txt", tmp_path, retries=3, registry=reg, **FAST)
    assert canonical.requests["/canonical/a.txt"] == 3


def test_gives_up_after_the_retries(tmp_path, reg, canonical):
    canonical.fail_next["/canonical/a.txt"] = 10
    with pytest.raises(FetchError, match=r"HTTP 503.*gave up after 3 attempts"):
        fetch("toy", "a.txt", tmp_path, retries=2, registry=reg, **FAST)
    assert canonical.requests["/canonical/a.txt"] == 3 and listing(tmp_path) == []


def test_truncated_transfer_is_retried(tmp_path, reg, canonical):
    canonical.truncate_next["/canonical/a.txt"] = 1
    path = fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    assert path.read_bytes() == FILES["a.txt"]
    assert canonical.requests["/canonical/a.txt"] == 2


def test_interrupted_download_leaves_no_partial_file(tmp_path, reg, monkeypatch):
    real_copy = fetch_mod._copy_stream

    def interrupted(src, dst, total, desc):
        dst.write(src.read(10))  # some bytes reach the temp file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "_copy_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    assert listing(tmp_path) == []
    monkeypatch.setattr(fetch_mod, "_copy_stream", real_copy)
    assert fetch("toy", "a.txt", tmp_path, registry=reg, **FAST).exists()


def test_downloads_follow_the_umask(tmp_path, reg):
    previous = os.umask(0o027)
    try:
        path = fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o640


def test_full_disk_during_a_download_names_the_disk_and_is_not_retried(
    tmp_path, reg, canonical, monkeypatch
):
    (tmp_path / "b.gz").write_bytes(b"stale")  # a file that will not be replaced

    def disk_full(stage, path):
        if stage == "write":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "fault_hook", disk_full)
    with pytest.raises(atomic.DiskFullError) as err:
        fetch("toy", "b.gz", tmp_path, registry=reg, **FAST)
    assert f"No space left on device while writing {tmp_path / 'b.gz'}" in str(err.value)
    assert f"mounted at {atomic.filesystem_of(tmp_path)}" in str(err.value)
    assert canonical.requests["/canonical/b.gz"] == 1  # a full disk is no network hiccup
    assert listing(tmp_path) == ["b.gz"] and (tmp_path / "b.gz").read_bytes() == b"stale"


def test_partial_file_of_a_killed_download_is_removed(tmp_path, reg):
    leftover = tmp_path / ".a.txt.1234abcd.tmp"  # what a download killed with SIGKILL leaves
    leftover.write_bytes(b"alp")
    fetch("toy", "a.txt", tmp_path, registry=reg, **FAST)
    assert listing(tmp_path) == ["a.txt"]


# --- files published inside an archive (like WMT14's test-full.tgz) ------------------------------


def test_archive_members_come_from_one_download(tmp_path, http_server):
    server = http_server()
    members = {"test-full/x.sgm": b'<seg id="1">x</seg>\n', "test-full/y.sgm": b"y\n"}
    server.files["/test-full.tgz"] = tgz_bytes({**members, "test-full/other": b"o"})
    url = f"{server.url}/test-full.tgz"
    reg = Registry([entry_for("wmt", Path(m).name, c, url, member=m) for m, c in members.items()])
    paths = fetch_all("wmt", tmp_path, registry=reg, **FAST)
    assert {f: p.read_bytes() for f, p in paths.items()} == {
        "x.sgm": members["test-full/x.sgm"],
        "y.sgm": members["test-full/y.sgm"],
    }
    assert server.requests["/test-full.tgz"] == 1
    assert listing(tmp_path) == ["x.sgm", "y.sgm"]  # the archive itself is not kept


def test_archive_member_from_a_mirror_is_the_file_itself(tmp_path, http_server):
    mirror = http_server()
    mirror.files["/wmt/x.sgm"] = b"x\n"
    reg = Registry([entry_for("wmt", "x.sgm", b"x\n", "http://127.0.0.1:9/t.tgz", "t/x.sgm")])
    assert (
        fetch(
            "wmt", "x.sgm", tmp_path, mirror=mirror.url, offline=True, registry=reg, **FAST
        ).read_bytes()
        == b"x\n"
    )


# --- safe extraction -----------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt"])
@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_path_traversal_archives_are_refused(tmp_path, name, kind):
    archive = tmp_path / f"bad.{kind}"
    data = {"fine.txt": b"fine", name: b"evil"}
    archive.write_bytes(tgz_bytes(data) if kind == "tgz" else _zip_bytes(data))
    dest = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchiveError, match="evil"):
        extract(archive, dest)
    assert not dest.exists() and listing(tmp_path / "work") == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "evil.txt").exists()


def test_symlink_escaping_the_destination_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (tmp_path / "a.tgz").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError):
        extract(tmp_path / "a.tgz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".tgz", ".tar.gz", ".zip"])
def test_extract_archives(tmp_path, suffix):
    data = {"d/a.txt": b"a", "d/sub/b.txt": b"b"}
    archive = tmp_path / f"x{suffix}"
    archive.write_bytes(_zip_bytes(data) if suffix == ".zip" else tgz_bytes(data))
    out = extract(archive, tmp_path / "out")
    assert (out / "d/a.txt").read_bytes() == b"a" and (out / "d/sub/b.txt").read_bytes() == b"b"
    assert sorted(os.listdir(tmp_path)) == ["out", archive.name]  # no temp folder left
    with pytest.raises(FileExistsError):
        extract(archive, out)
    assert (extract(archive, out, overwrite=True) / "d/a.txt").exists()


def test_extract_single_gz(tmp_path):
    (tmp_path / "t.txt.gz").write_bytes(gz(b"hello"))
    assert (extract(tmp_path / "t.txt.gz", tmp_path / "o") / "t.txt").read_bytes() == b"hello"

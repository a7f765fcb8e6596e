"""Shared pytest fixtures. Data layer: `http_server` (loopback servers, tests.fixtures)."""

import os
import sys
from pathlib import Path

import pytest

# Make `tests.fixtures` importable however pytest is launched (the pytest script does not put the
# repository root on sys.path).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.ci_skips import pytest_runtest_makereport  # noqa: F401  (the hook: no skip under CI=true)
from tests.fixtures.http_server import LoopbackServer

# snakemake-executor-plugin-slurm runs `scontrol show config` when it is imported, i.e. at every
# snakemake start; with SLURM's tools installed but no controller up (here after the SLURM tests
# stop theirs) that call blocks for its 10 s timeout. Outside tests/test_slurm_workflow.py (which
# puts the real one back) a stand-in that fails at once comes first on PATH.
NO_SLURM_BIN = str(Path(__file__).resolve().parent / "fixtures" / "no_slurm")
os.environ["PATH"] = os.pathsep.join([NO_SLURM_BIN, os.environ.get("PATH", "")])


@pytest.fixture
def http_server():
    """Factory of started LoopbackServers on 127.0.0.1 (random ports), stopped after the test."""
    servers = []

    def start() -> LoopbackServer:
        servers.append(LoopbackServer().start())
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def finished_test_run(tmp_path_factory):
    """A copy of the repository root where the `test` preset ran to the end, as a user runs it:
    ``snakemake --cores 2 --configfile presets/test.yaml test-data.yaml``, the overlay pointing
    the download registry at synthetic Fashion-MNIST served on loopback.

    Yields ``(repo, preset_args, server)``; tests that change files of the copy restore them.
    """
    import yaml
    from tests.fixtures.data_formats import registry_for, write_fashion_mnist
    from tests.workflow_helpers import repo_copy, run_snakemake, write_registry

    tmp = tmp_path_factory.mktemp("finished-test-run")
    files_dir = tmp / "fixture-files"
    write_fashion_mnist(files_dir, n_train=160, n_test=48)
    files = {p.name: p.read_bytes() for p in files_dir.iterdir()}
    server = LoopbackServer().start()
    try:
        server.files = {f"/fmnist/{name}": content for name, content in files.items()}
        repo = repo_copy(tmp / "repo")
        tsv = write_registry(repo / "test-registry.tsv",
                             registry_for("fashion-mnist", files, f"{server.url}/fmnist").entries("fashion-mnist"))
        (repo / "test-data.yaml").write_text(yaml.safe_dump({"data": {"registry": str(tsv), "mirror": None}}))
        preset_args = ("--configfile", "presets/test.yaml", "test-data.yaml")
        proc = run_snakemake(repo, "--cores", "2", *preset_args)
        assert proc.returncode == 0, proc.stderr[-5000:]
        yield repo, preset_args, server
    finally:
        server.stop()

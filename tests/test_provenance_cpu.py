"""What decides CPU float results, as every metrics.json records it (gradprune.provenance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from gradprune import provenance
from gradprune.provenance import cpu_model, cpu_numerics

# What torch.__config__.show() prints for an OpenBLAS build without oneDNN's version line.
OPENBLAS_BUILD = """PyTorch built with:
  - GCC 11.2
  - OpenBLAS 0.3.27
  - Build settings: BLAS_INFO=open, BUILD_TYPE=Release, LAPACK_INFO=open, USE_MKLDNN=OFF,
"""


def test_the_dispatched_capability_and_the_overriding_variables_are_recorded():
    """ATEN_CPU_CAPABILITY=default makes torch dispatch its unvectorized kernels: the record says
    so, and names the variable that did it."""
    code = "import json; from gradprune.provenance import cpu_numerics; print(json.dumps(cpu_numerics()))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=120).stdout
    record = json.loads(out)
    assert record["capability"] == "DEFAULT"
    assert record["env"] == {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":  # this machine dispatches wider
        assert cpu_numerics()["capability"] != "DEFAULT"


def test_threads_are_those_in_force():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert cpu_numerics()["threads"] == 1
        torch.set_num_threads(2)
        assert cpu_numerics()["threads"] == 2
    finally:
        torch.set_num_threads(saved)


def test_library_builds_are_read_from_torchs_build_text(monkeypatch):
    monkeypatch.setattr(torch.__config__, "show", lambda: OPENBLAS_BUILD)
    record = cpu_numerics()
    assert record["blas"] == "open" and record["blas_version"] == "OpenBLAS 0.3.27"
    assert record["onednn"] is None  # the build text names no oneDNN version


def test_the_installed_build_names_its_onednn_and_blas():
    record = cpu_numerics()
    if torch.backends.mkldnn.is_available():
        assert record["onednn"] is not None and record["onednn"].startswith("v")
    assert record["blas"] is not None and record["torch_build"] == torch.__version__


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nflags\t: avx512f\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    assert cpu_model(tmp_path / "missing")  # elsewhere: what platform says, never empty


def test_provenance_carries_the_record():
    record = provenance.provenance({"x": 1}, "cpu", provenance.now())
    assert record["cpu"].keys() == cpu_numerics().keys()
    assert record["cpu"]["threads"] == torch.get_num_threads()

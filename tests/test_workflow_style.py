"""The workflow's own style checks, as the Snakemake workflow catalog runs them in CI:
``snakemake --lint`` reports nothing and ``snakefmt --check`` would change no file."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def test_snakemake_lint_is_clean():
    proc = subprocess.run([_tool("snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    # --lint exits 1 when it has a finding (checked: a rule without log or conda fails)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_rules_are_snakefmt_formatted():
    rules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    proc = subprocess.run([_tool("snakefmt"), "--check", "Snakefile", *rules], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        "snakefmt would reformat rules; run `snakefmt Snakefile workflow/rules`:\n"
        + proc.stdout[-4000:] + proc.stderr[-4000:])

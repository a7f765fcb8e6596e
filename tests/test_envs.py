"""The conda envs of the rules (envs/*.yaml, for `snakemake --sdm conda`) are pinned to exactly what
CI installs with pip from pyproject.toml, and what CI installs is what runs these tests.

Conda channels cannot be reached from CI, so the envs are never built there: these checks are
what keeps them honest. Each one fails as soon as a pin drifts on either side.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk")) + [ROOT / "Snakefile"]
TORCH = "2.14.1"
PYTHON = "3.11"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*$")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (PyYAML == pyyaml, snakemake_executor == -executor)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and isinstance(env.get("dependencies"), list), (
        f"{path.name}: no dependencies"
    )
    return env


def conda_specs(env: dict) -> list[str]:
    return [d for d in env["dependencies"] if isinstance(d, str)]


def pip_specs(env: dict) -> list[str]:
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [spec for block in pips for spec in block]


def parse_pins(specs: list[str], where: str) -> dict[str, str]:
    """name -> version of exact `name==version` pins; anything else fails (a range is a drift too)."""
    pins = {}
    for spec in specs:
        m = PIN.match(spec)
        assert m, f"{where}: {spec!r} is not an exact name==version pin"
        name = canonical(m.group(1))
        assert name not in pins, f"{where}: {name} pinned twice"
        pins[name] = m.group(2)
    return pins


def pyproject_pins() -> dict[str, str]:
    """Exact pins of [project] dependencies and every optional-dependencies group (self-references
    such as gradprune[test] are skipped). A package pinned differently in two groups fails."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project.get("dependencies", [])}
    groups.update(
        {
            f"optional-dependencies.{k}": v
            for k, v in project.get("optional-dependencies", {}).items()
        }
    )
    pins: dict[str, str] = {}
    for group, specs in groups.items():
        for spec in specs:
            if canonical(re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0]) == canonical(
                project["name"]
            ):
                continue
            m = PIN.match(spec)
            assert m, f"pyproject.toml {group}: {spec!r} is not an exact name==version pin"
            name, version = canonical(m.group(1)), m.group(2)
            assert pins.get(name, version) == version, (
                f"pyproject.toml pins {name} twice: {pins[name]} and {version}"
            )
            pins[name] = version
    return pins


def top_level_module(dist: str) -> str:
    """The importable module of an installed distribution (pyyaml -> yaml)."""
    mods = [
        m
        for m, dists in metadata.packages_distributions().items()
        if canonical(dist) in {canonical(d) for d in dists}
        and m.isidentifier()
        and not m.startswith("_")
    ]
    assert mods, f"{dist}: installed but provides no importable top-level module"
    exact = [m for m in mods if canonical(m) == canonical(dist)]
    return exact[0] if exact else min(mods)


def env_id(path: Path) -> str:
    return path.name


def test_there_are_envs():
    assert {p.name for p in ENVS} >= {"data.yaml", "train.yaml", "report.yaml"}


@pytest.mark.parametrize("path", ENVS, ids=env_id)
def test_env_uses_python_311_and_installs_with_pip_only(path):
    env = load_env(path)
    specs = conda_specs(env)
    pythons = [s for s in specs if re.match(r"^python\b", s)]
    assert pythons == [f"python={PYTHON}"], (
        f"{path.name}: python spec {pythons}, want python={PYTHON}"
    )
    # Everything else comes from pip with the CI pins (conda packages could resolve to other builds).
    assert set(specs) - {f"python={PYTHON}", "pip"} == set(), f"{path.name}: conda packages {specs}"
    assert pip_specs(env), f"{path.name}: no pip dependencies"


@pytest.mark.parametrize("path", ENVS, ids=env_id)
def test_env_pip_pins_equal_pyproject(path):
    env_pins = parse_pins(pip_specs(load_env(path)), path.name)
    project = pyproject_pins()
    missing = sorted(set(env_pins) - set(project))
    assert not missing, f"{path.name} pins packages pyproject.toml does not: {missing}"
    drift = {n: (v, project[n]) for n, v in env_pins.items() if project[n] != v}
    assert not drift, f"{path.name}: pins differ from pyproject.toml (env, pyproject): {drift}"


@pytest.mark.parametrize("path", ENVS, ids=env_id)
def test_env_pins_torch_exactly(path):
    env_pins = parse_pins(pip_specs(load_env(path)), path.name)
    if path.name == "train.yaml":
        assert "torch" in env_pins, "the train env must install torch"
    if "torch" in env_pins:
        assert env_pins["torch"] == TORCH, f"{path.name}: torch=={env_pins['torch']}, want {TORCH}"


def test_pyproject_pins_torch_exactly():
    pinned = pyproject_pins().get("torch")
    assert pinned == TORCH, f"pyproject.toml pins torch=={pinned}, want {TORCH}"


def test_running_python_is_the_envs_python():
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON


def _env_pins_all() -> dict[str, str]:
    pins: dict[str, str] = {}
    for path in ENVS:
        pins.update(parse_pins(pip_specs(load_env(path)), path.name))
    return pins


@pytest.mark.parametrize("name", sorted(_env_pins_all()))
def test_env_pin_is_installed_and_importable(name):
    """Every package an env pins is installed here at exactly that version, and imports."""
    want = _env_pins_all()[name]
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name}=={want} (pinned in envs/) is not installed in {sys.prefix}")
    assert have == want, f"{name}: installed {have}, envs/ pin {want}"
    module = importlib.import_module(top_level_module(name))
    if name in ("torch", "torchvision", "numpy", "pandas", "matplotlib"):
        # what actually imports (not a stale copy shadowing the installed distribution)
        version = str(module.__version__).split("+")[0]
        assert version == want, (
            f"{name} imports as {module.__version__} from {module.__file__}, pin {want}"
        )


def _conda_directives(path: Path) -> list[tuple[int, str]]:
    """(line number, path string) of every `conda:` directive; comments between the keyword and
    its value are skipped. A directive whose value is not a plain string literal fails."""
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*conda:\s*(.*?)\s*$", line)
        if not m:
            continue
        value = m.group(1)
        j = i
        while not value or value.startswith("#"):
            j += 1
            assert j < len(lines), f"{path.name}:{i + 1}: conda: without a value"
            value = lines[j].strip()
        lit = re.fullmatch(r"""(['"])(.+?)\1\s*,?(\s*#.*)?""", value)
        assert lit, f"{path.name}:{i + 1}: conda: value {value!r} is not a string literal"
        found.append((i + 1, lit.group(2)))
    return found


def test_every_conda_path_in_the_rules_exists():
    refs = [(p, n, ref) for p in RULES for n, ref in _conda_directives(p)]
    assert len(refs) >= 3, "no conda: directives found in workflow/rules"
    envs_dir = (ROOT / "envs").resolve()
    for path, line, ref in refs:
        target = (path.parent / ref).resolve()  # relative to the file holding the rule
        assert target.is_file(), (
            f"{path.relative_to(ROOT)}:{line}: conda env {ref} -> {target} missing"
        )
        assert target.parent == envs_dir and target.suffix == ".yaml", (
            f"{path.relative_to(ROOT)}:{line}: {ref}"
        )
    # and no env is orphaned
    used = {(p.parent / ref).resolve() for p, _, ref in refs}
    assert {e.resolve() for e in ENVS} <= used, (
        f"envs not used by any rule: {sorted(set(ENVS) - used)}"
    )

"""Under CI=true a skipped test fails: CI has the mirror, the reference files, root for SLURM and
every tool, so a skip there hides a test that should have run. Allowed: the tests marked
``cuda`` (CI has no GPU) and those marked ``ci_may_skip("why")``, for a skip that depends on the
CI machine's hardware (say which). Imported by tests/conftest.py, which registers the hook."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("cuda") is None
            and item.get_closest_marker("ci_may_skip") is None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, where every test must run: {reason}. Fix the CI "
                           f"environment, or mark the test ci_may_skip(\"why\") if the skip depends "
                           f"on the machine's hardware")
    return report

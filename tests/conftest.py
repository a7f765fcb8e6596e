"""Shared pytest fixtures. Data layer: `http_server` (loopback servers, tests.fixtures)."""

import sys
from pathlib import Path

import pytest

# Make `tests.fixtures` importable however pytest is launched (the pytest script does not put the
# repository root on sys.path).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fixtures.http_server import LoopbackServer


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

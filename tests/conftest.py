"""Shared fixtures: one API server per test module, PostgreSQL databases, kubectl."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ApiServer, Kubectl, free_port, kubectl_binary, postgres_available, postgres_database


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real API server process on SQLite, shared by the tests of one module."""
    server = ApiServer(tmp_path_factory.mktemp("apiserver"), free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def require_postgres() -> None:
    # PostgreSQL is part of the supported platform: a missing server fails loudly, never skips.
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable (SKIFF_TEST_POSTGRES or 127.0.0.1:5432); it is required")


@pytest.fixture
def postgres_url(require_postgres: None) -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def kubectl(apiserver: ApiServer) -> Kubectl:
    return Kubectl(kubectl_binary(), apiserver.kubeconfig)

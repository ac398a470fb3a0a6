"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dropship_pipeline.simulator import SimulatorConfig, SimulatorServer
from dropship_pipeline_tests.openssh import OpenSshServer, start_sshd


@pytest.fixture(scope="session")
def openssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSshServer]:
    """A real sshd on a loopback port for the whole session (skipped where sshd is missing)."""
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """A simulated Dropship service on a free loopback port, default settings, empty feed."""
    with SimulatorServer(SimulatorConfig()) as server:
        yield server


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start simulators with chosen settings (``SimulatorConfig`` fields as keywords)."""
    started: list[SimulatorServer] = []

    def make(**settings: object) -> SimulatorServer:
        server = SimulatorServer(SimulatorConfig(**settings)).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()

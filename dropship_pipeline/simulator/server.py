"""Running the simulator: uvicorn on a background thread, bound to loopback."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn

from dropship_pipeline.simulator.app import build_app
from dropship_pipeline.simulator.config import SimulatorConfig
from dropship_pipeline.simulator.faults import quiet_deliberate_drops
from dropship_pipeline.simulator.generator import OrderStream
from dropship_pipeline.simulator.state import SimulatorState
from dropship_pipeline.simulator.tokens import TokenIssuer

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class SimulatorServer:
    """One simulated Dropship service, served over HTTP on ``config.host``.

    ``start()`` returns once the server answers; ``base_url`` is then the Dropship base URL
    (``http://127.0.0.1:PORT/v1``, also the accounts base URL), and ``state`` is the live data,
    for tests that want to look or add orders without HTTP. ``config.initial_orders`` are
    generated before the server starts; ``config.order_rate`` keeps adding orders until stop.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimulatorState(self.config)
        self.tokens = TokenIssuer(self.config)
        self.app = build_app(self.state, self.tokens)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stream: OrderStream | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("The simulator is not started; call start() first.")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Dropship base URL, ``/v1`` included; tokens are at ``{base_url}/oauth2/token``."""
        return f"{self.root_url}/v1"

    @property
    def control_url(self) -> str:
        return f"{self.root_url}/_simulator"

    def start(self) -> SimulatorServer:
        """Bind, serve on a daemon thread and wait until the server answers."""
        if self._thread is not None:
            raise RuntimeError("The simulator is already started.")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self.state.set_base_url(self.base_url)
        if self.config.initial_orders:
            self.state.add_orders(self.config.initial_orders)
            self.state.warm_archives()

        quiet_deliberate_drops()
        server_config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(server_config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"dropship-simulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_answering()

        if self.config.order_rate:
            self._stream = OrderStream(lambda: self.state.add_orders(1), self.config.order_rate)
            self._stream.start()
        return self

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        assert self._server is not None and self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The simulator did not start on {self.root_url}.")
            time.sleep(0.005)
        response = httpx.get(f"{self.control_url}", timeout=START_TIMEOUT_SECONDS)
        response.raise_for_status()

    def stop(self) -> None:
        """Stop adding orders and stop serving; safe to call twice."""
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

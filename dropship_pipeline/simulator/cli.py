"""The ``simulator`` command: serve the simulated Dropship service until Ctrl-C.

``add_arguments`` and ``run`` are shared by ``python -m dropship_pipeline.simulator`` and
``dropship-pipeline simulator``. This is a command-line entry, so it prints; what it prints
are the throwaway credentials of a local service, which is the point of running it.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
import time
from types import FrameType

from dropship_pipeline.simulator.config import (
    DEFAULT_EXPIRES_IN,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SUPPLIER_ID,
    Faults,
    SimulatorConfig,
)
from dropship_pipeline.simulator.server import SimulatorServer

DESCRIPTION = "Serve a simulated iQmetrix Dropship service on a local port."
DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to bind, 0 for any free port (default: %(default)s)",
    )
    parser.add_argument(
        "--supplier-id",
        type=int,
        default=DEFAULT_SUPPLIER_ID,
        help="the supplier served (default: %(default)s)",
    )
    parser.add_argument(
        "--orders",
        "--events",
        dest="orders",
        type=int,
        default=0,
        metavar="N",
        help="orders (one order-created event each) in the feed before serving (default: 0)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the orders and faults (default: 0)"
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help="events per feed page (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="PER_SECOND",
        help="keep adding orders at this rate",
    )
    parser.add_argument("--client-id", help="OAuth2 client id to accept (default: generated)")
    parser.add_argument(
        "--client-secret", help="OAuth2 client secret to accept (default: generated)"
    )
    parser.add_argument(
        "--username",
        default="supplier@example.com",
        help="user of the password grant (default: %(default)s)",
    )
    parser.add_argument("--password", help="password of that user (default: generated)")
    parser.add_argument(
        "--token", help="also accept this fixed bearer token (for DROPSHIP_ACCESS_TOKEN)"
    )
    parser.add_argument(
        "--expires-in",
        type=int,
        default=DEFAULT_EXPIRES_IN,
        help="access token lifetime in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="flag updates that leave the documented lifecycle or drop tracking numbers",
    )
    parser.add_argument(
        "--strict-reject",
        action="store_true",
        help="answer such updates with 400 (implies --strict)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="set a fault knob, e.g. rate_limit_every=10; knobs: " + ", ".join(Faults().as_dict()),
    )


def _faults(pairs: list[str], seed: int) -> Faults:
    changes: dict[str, str | int] = {"seed": seed}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--fault {pair!r} must be written KNOB=VALUE.")
        changes[name.strip()] = value.strip()
    return Faults().changed(changes)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print how to reach it, serve until Ctrl-C; return an exit code."""
    try:
        config = SimulatorConfig(
            supplier_id=args.supplier_id,
            page_size=args.page_size,
            seed=args.seed,
            host=args.host,
            port=args.port,
            client_id=args.client_id or f"simulator-{secrets.token_hex(4)}",
            client_secret=args.client_secret or secrets.token_urlsafe(18),
            users={args.username: args.password or secrets.token_urlsafe(12)},
            access_token=args.token,
            expires_in=args.expires_in,
            strict=args.strict or args.strict_reject,
            strict_reject=args.strict_reject,
            order_rate=args.rate,
            faults=_faults(args.fault, args.seed),
        )
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2

    server = SimulatorServer(config)
    started = time.perf_counter()
    if args.orders:
        print(f"Generating {args.orders} orders...", flush=True)
        server.state.add_orders(args.orders)
    try:
        server.start()
    except OSError as error:
        print(f"simulator: cannot listen on {args.host}:{args.port} ({error}).", file=sys.stderr)
        return 1
    server.state.warm_archives()

    summary = server.state.summary()["suppliers"][str(config.supplier_id)]
    password = next(iter(config.users.values()))
    ready = time.perf_counter() - started
    print(
        f"Dropship simulator at {server.base_url} (ready in {ready:.1f} s): "
        f"supplier {config.supplier_id}, {summary['events']} events on {summary['pages']} pages.\n"
        f"  DROPSHIP_API_URL={server.base_url}\n"
        f"  DROPSHIP_AUTH_URL={server.base_url}\n"
        f"  DROPSHIP_SUPPLIER_ID={config.supplier_id}\n"
        f"  DROPSHIP_CLIENT_ID={config.client_id}\n"
        f"  DROPSHIP_CLIENT_SECRET={config.client_secret}\n"
        f"  DROPSHIP_USERNAME={args.username}\n"
        f"  DROPSHIP_PASSWORD={password}",
        flush=True,
    )
    if config.access_token:
        print(f"  DROPSHIP_ACCESS_TOKEN={config.access_token}", flush=True)
    print(f"Inspection API: {server.control_url}  (Ctrl-C to stop)", flush=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("Stopping the simulator.", flush=True)
    finally:
        server.stop()
    return 0

"""The simulated service as an ASGI app: the Dropship API under ``/v1``, and ``/_simulator``.

``/v1`` answers as the API reference describes: JSON ``{"Message": ...}`` for 400 and 404,
plain text for 401 and 429. ``/_simulator`` is the inspection and control API for tests and
the demo; it needs no token and is never faulted, and its name cannot be mistaken for a path
of the real service.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from dropship_pipeline.simulator.faults import FaultInjector
from dropship_pipeline.simulator.state import NOT_FOUND, SimulatorState, UpdateKind
from dropship_pipeline.simulator.tokens import TokenError, TokenIssuer

ATOM_TYPE = "application/atom+xml"
JSON_TYPE = "application/json; charset=utf-8"
SUPPLIER_NOT_FOUND = "Cannot find supplier identifier in the uri"
INVALID_REQUEST = "The request is invalid"
# Enough for the ingest benchmark's 100,000 events in one call, and a bound on a typo.
MAX_ORDERS_PER_CALL = 200_000


def _message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"Message": text}, status_code=status)


def _invalid_token() -> PlainTextResponse:
    return PlainTextResponse("Invalid token", status_code=401)


class _Api:
    """The endpoint functions, bound to one state and token issuer."""

    def __init__(self, state: SimulatorState, tokens: TokenIssuer) -> None:
        self.state = state
        self.tokens = tokens

    # ---- accounts --------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        is_form = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        # Parameters anywhere but a form body are not read, as on the real endpoint.
        form = dict(parse_qsl(body, keep_blank_values=True)) if is_form else {}
        try:
            answer = self.tokens.grant(form)
        except TokenError as error:
            return JSONResponse({"error": error.code}, status_code=400)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def ping(self, request: Request) -> Response:
        return JSONResponse({"ApplicationVersion": "2.0.0.1155", "DbVersion": 17})

    # ---- Dropship --------------------------------------------------------------------------

    def _supplier(self, request: Request) -> int | Response:
        """The URL's supplier id, or the response that refuses the request."""
        if not self.tokens.is_valid(request.headers.get("authorization")):
            return _invalid_token()
        raw = request.path_params["supplier_id"]
        if not raw.isascii() or not raw.isdigit() or not self.state.has_supplier(int(raw)):
            return _message(400, SUPPLIER_NOT_FOUND)
        return int(raw)

    def _feed(self, body: bytes) -> Response:
        kind = JSON_TYPE if self.state.faults.json_content_type else ATOM_TYPE
        return Response(body, media_type=kind)

    async def notifications(self, request: Request) -> Response:
        supplier = self._supplier(request)
        if isinstance(supplier, Response):
            return supplier
        return self._feed(self.state.current_page(supplier))

    async def page(self, request: Request) -> Response:
        supplier = self._supplier(request)
        if isinstance(supplier, Response):
            return supplier
        body = self.state.page(supplier, request.path_params["page_id"])
        if body is None:
            return _message(400, INVALID_REQUEST)
        return self._feed(body)

    async def order_status_update(self, request: Request) -> Response:
        return await self._update(request, "order")

    async def item_status_update(self, request: Request) -> Response:
        return await self._update(request, "item")

    async def _update(self, request: Request, kind: UpdateKind) -> Response:
        supplier = self._supplier(request)
        if isinstance(supplier, Response):
            return supplier
        status, answer = self.state.receive_update(
            kind, supplier, request.path_params["order_id"], await request.body()
        )
        return JSONResponse(answer, status_code=status)

    # ---- inspection and control -------------------------------------------------------------

    async def control_index(self, request: Request) -> Response:
        return JSONResponse(self.state.summary())

    async def control_orders(self, request: Request) -> Response:
        supplier = request.query_params.get("supplier_id")
        if supplier is not None and not (
            supplier.isdigit() and self.state.has_supplier(int(supplier))
        ):
            return _message(400, f"Supplier {supplier} is not served by this simulator.")
        if request.method == "GET":
            orders = self.state.orders(None if supplier is None else int(supplier))
            return JSONResponse({"orders": orders})

        payload = await _json_object(request)
        count = payload.get("count", 1)
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= MAX_ORDERS_PER_CALL
        ):
            return _message(400, f"count must be a whole number from 0 to {MAX_ORDERS_PER_CALL}.")
        target = payload.get("supplier_id", None if supplier is None else int(supplier))
        if target is not None and not (isinstance(target, int) and self.state.has_supplier(target)):
            return _message(400, f"Supplier {target} is not served by this simulator.")
        # Thousands of orders take a while; keep the event loop free to serve the feed.
        added = await run_in_threadpool(self.state.add_orders, count, target)
        return JSONResponse({"order_ids": [o.order_id for o in added]}, status_code=201)

    async def control_order(self, request: Request) -> Response:
        order = self.state.order(request.path_params["order_id"])
        if order is None:
            return _message(404, "Not found")
        order["updates"] = [u.as_dict() for u in self.state.updates(order["order_id"])]
        return JSONResponse(order)

    async def control_resend(self, request: Request) -> Response:
        try:
            entry_id = self.state.resend_order(request.path_params["order_id"])
        except KeyError:
            return _message(404, "Not found")
        return JSONResponse({"entry_id": entry_id}, status_code=201)

    async def control_updates(self, request: Request) -> Response:
        order_id = request.query_params.get("order_id")
        return JSONResponse({"updates": [u.as_dict() for u in self.state.updates(order_id)]})

    async def control_faults(self, request: Request) -> Response:
        if request.method in {"PUT", "PATCH"}:
            try:
                self.state.set_faults(await _json_object(request))
            except ValueError as error:
                return _message(400, str(error))
        return JSONResponse(self.state.faults.as_dict())


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "The body must be a JSON object.") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "The body must be a JSON object.")
    return payload


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return JSONResponse(NOT_FOUND, status_code=404)
        if exc.status_code == 405:
            return _message(405, "The requested resource does not support this http method.")
        return _message(exc.status_code, exc.detail)
    raise exc


def build_app(state: SimulatorState, tokens: TokenIssuer | None = None) -> ASGIApp:
    """The whole simulator as one ASGI app, transport faults included."""
    api = _Api(state, tokens or TokenIssuer(state.config))
    supplier = "/v1/Suppliers({supplier_id})"
    routes = [
        Route("/v1/oauth2/token", api.token, methods=["POST"]),
        Route("/v1/ping", api.ping, methods=["GET"]),
        Route(f"{supplier}/Notifications", api.notifications, methods=["GET"]),
        Route(f"{supplier}/Notifications/Pages({{page_id}})", api.page, methods=["GET"]),
        Route(
            f"{supplier}/Orders({{order_id}})/OrderStatusUpdate",
            api.order_status_update,
            methods=["PUT"],
        ),
        Route(
            f"{supplier}/Orders({{order_id}})/ItemStatusUpdate",
            api.item_status_update,
            methods=["PUT"],
        ),
        Route("/_simulator", api.control_index, methods=["GET"]),
        Route("/_simulator/orders", api.control_orders, methods=["GET", "POST"]),
        Route("/_simulator/orders/{order_id}", api.control_order, methods=["GET"]),
        Route("/_simulator/orders/{order_id}/resend", api.control_resend, methods=["POST"]),
        Route("/_simulator/updates", api.control_updates, methods=["GET"]),
        Route("/_simulator/faults", api.control_faults, methods=["GET", "PUT", "PATCH"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return FaultInjector(app, state)

"""The explorer's web app (Starlette): one page, its two static files and a JSON API.

``GET /`` serves the page, ``GET /static/{explorer.js,explorer.css}`` its script and style
(only these names: nothing else on disk is reachable), ``GET /api/info`` what the page needs
to draw its controls, and ``POST /api/<operation>`` runs one :class:`Explorer` operation
(reconstruct, interpolate, traverse, arithmetic, prior, map, place) on a JSON body checked by
:mod:`lmvae.explorer.requests`, through the latest-wins lanes of :mod:`lmvae.explorer.lanes`.

Safety: the app answers only to the Host names it was given (a DNS-rebinding page has another
name), with a token when it listens beyond loopback (taken from ``?token=`` once, then from a
same-site cookie or an ``Authorization: Bearer`` header), takes only JSON POSTs from its own
origin, and sends a content-security policy that allows nothing outside the page's origin.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import time
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import LmvaeError
from .lanes import Lanes, Stale
from .requests import PARSERS, BadRequest, Limits, parse_body
from .session import Explorer

__all__ = ["LOOPBACK", "allowed_hosts", "create_app", "is_loopback"]

log = logging.getLogger("lmvae.explorer")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATIC = {"explorer.js": "text/javascript", "explorer.css": "text/css"}
TOKEN_COOKIE = "lmvae_explorer_token"
_CLIENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to listen on) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Host-header names the app answers to when listening on ``host``: loopback names, the
    address itself, this machine's names for a wildcard address, and ``extra``."""
    names = [*LOOPBACK, host, *extra]
    if host in ("0.0.0.0", "::"):
        names += [socket.gethostname(), socket.getfqdn()]
    return sorted({n.lower() for n in names if n})


def _host_name(header: str) -> str:
    """The name of a Host header (``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0].lower()
    return header.rsplit(":", 1)[0].lower() if header.count(":") == 1 else header.lower()


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class Guard:
    """ASGI middleware: Host, token and origin checks before any route, security headers on
    every response."""

    def __init__(self, app: Any, hosts: Iterable[str], token: str | None):
        self.app, self.hosts, self.token = app, set(hosts), token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        problem = self._check(request)
        if problem is not None:
            return await problem(scope, receive, send)

        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_secured)

    def _check(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if _host_name(host) not in self.hosts:
            return _error(400, f"unexpected Host header {host!r}: the explorer answers to "
                          f"{', '.join(sorted(self.hosts))} (see --allowed-host)")  # fmt: skip
        if self.token is not None and not self._authorised(request):
            return _error(401, "this explorer needs its access token: open the URL it printed")
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
                return _error(403, f"cross-origin request from {origin} refused")
            if request.headers.get("content-type", "").split(";")[0].strip() != (
                "application/json"
            ):
                return _error(415, "send the request body as application/json")
        return None

    def _authorised(self, request: Request) -> bool:
        assert self.token is not None
        given = [request.cookies.get(TOKEN_COOKIE, "")]
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer "):
            given.append(bearer[7:])
        if request.url.path == "/":
            given.append(request.query_params.get("token", ""))
        return any(secrets.compare_digest(g.encode(), self.token.encode()) for g in given if g)


def _asset(name: str) -> bytes:
    return (resources.files("lmvae.explorer") / "static" / name).read_bytes()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    explorer: Explorer,
    *,
    hosts: Iterable[str] = LOOPBACK,
    token: str | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The explorer's app around ``explorer``; ``app.state.lanes.started`` counts the
    operations that reached the model."""
    limits = limits or Limits()
    lanes = Lanes()
    page = _asset("index.html")

    async def index(request: Request) -> Response:
        response = Response(page, media_type="text/html; charset=utf-8")
        if token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _error(404, f"no such file: {name}")
        return Response(_asset(name), media_type=STATIC[name])

    async def info(request: Request) -> Response:
        return JSONResponse({**explorer.info(), "limits": limits.__dict__})

    async def operation(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PARSERS:
            return _error(404, f"unknown operation {name!r}: use {', '.join(PARSERS)}")
        client = request.headers.get("x-explorer-client") or (
            request.client.host if request.client else "unknown"
        )
        if not _CLIENT.fullmatch(client.replace(".", "_").replace(":", "_")):
            return _error(400, "X-Explorer-Client must be 1-64 letters, digits, - or _")
        try:
            body = parse_body(await _read_body(request, limits.max_body), limits)
            kwargs = PARSERS[name](body, explorer, limits)
            started = time.perf_counter()
            result = await lanes.run((client, name), lambda: getattr(explorer, name)(**kwargs))
        except BadRequest as e:
            return _error(e.status, e.message)
        except Stale:
            return _error(409, "replaced by a newer request of the same kind", stale=True)
        except KeyError as e:
            return _error(404, str(e.args[0]))
        except LmvaeError as e:
            return _error(422, str(e))
        except Exception as e:  # a bug: keep the server up, say what broke
            log.exception("explorer operation %s failed", name)
            return _error(500, f"internal error in {name}: {type(e).__name__}: {e}")
        result["seconds"] = round(time.perf_counter() - started, 4)
        return JSONResponse(result)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", static),
            Route("/api/info", info),
            Route("/api/{name}", operation, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.lanes = lanes
    app.state.explorer = explorer
    app.add_middleware(Guard, hosts=[_host_name(h) for h in hosts], token=token)
    return app

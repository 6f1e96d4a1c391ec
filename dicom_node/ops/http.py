"""The operator's HTTP endpoint: liveness, readiness and metrics.

``GET /healthz``
    200 ``ok`` while the process serves HTTP at all (liveness: restart me if not).
``GET /readyz``
    200 when every readiness check passes, else 503; the body is JSON,
    ``{"ready": bool, "checks": {name: {"ok": bool, "detail": str}}}``.
``GET /metrics``
    Prometheus text format (see :mod:`dicom_node.ops.metrics`).

The server is the standard library's :class:`~http.server.ThreadingHTTPServer`
on a daemon thread. It knows nothing about what it reports: readiness checks are
:data:`~dicom_node.ops.probes.Probe` callables and the metrics page a callable
returning text, both passed in.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dicom_node.ops.metrics import CONTENT_TYPE
from dicom_node.ops.probes import Probe, run_probes

__all__ = ["OpsServer"]

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "dicom-node-ops"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        ops = self.server.ops
        try:
            if path == "/healthz":
                status, ctype, body = HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n"
            elif path == "/readyz":
                checks = run_probes(ops.probes)
                ready = all(c.ok for c in checks.values())
                doc = {"ready": ready,
                       "checks": {k: {"ok": c.ok, "detail": c.detail} for k, c in checks.items()}}
                if not ready:
                    logger.info("not ready: %s", "; ".join(
                        f"{k}: {c.detail}" for k, c in checks.items() if not c.ok))
                status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
                ctype, body = "application/json", json.dumps(doc, indent=1).encode() + b"\n"
            elif path == "/metrics":
                status, ctype, body = HTTPStatus.OK, CONTENT_TYPE, ops.metrics().encode()
            else:
                status, ctype, body = HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n"
        except Exception:  # noqa: BLE001 - an endpoint failure is a 500, logged with its cause
            logger.exception("ops endpoint %s failed", path)
            status, ctype, body = (HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                                   b"internal error\n")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ops: OpsServer) -> None:
        self.ops = ops
        super().__init__(address, _Handler)


class OpsServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on a background thread.

    Parameters
    ----------
    host, port
        Where to listen (port 0: any free port; see :attr:`address`).
    probes
        Readiness checks by name, run on each ``/readyz``.
    metrics
        Returns the ``/metrics`` page.
    """

    def __init__(self, host: str, port: int, *, probes: Mapping[str, Probe],
                 metrics: Callable[[], str]) -> None:
        self.host, self.port = host, port
        self.probes = dict(probes)
        self.metrics = metrics
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and start serving (raises ``OSError`` when the port is taken)."""
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()
        host, port = self.address
        logger.info("health and metrics on http://%s:%d/", host, port)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound."""
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

"""Wire the ops endpoint to a running :class:`~dicom_node.server.Node`.

:func:`start_ops_server` builds the readiness checks and the metrics page from
what the node holds (database, store, SCP, executor, delivery worker, settings)
and starts the server on ``settings.host:settings.http_port``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from dicom_node.ops.http import OpsServer
from dicom_node.ops.metrics import collect_metrics
from dicom_node.ops.probes import Probe, database_probe, store_probe, threads_probe, weights_probe

if TYPE_CHECKING:
    from dicom_node.server import Node

__all__ = ["node_probes", "start_ops_server"]

logger = logging.getLogger(__name__)


def node_probes(node: Node) -> dict[str, Probe]:
    """The readiness checks of ``node``: database, store, workers, weights."""
    assert node.session_factory is not None and node.store is not None, "node not started"
    settings = node.settings
    threads: dict[str, int] = {}
    if getattr(node, "delivery", None) is not None:
        threads["delivery"] = 1
    if getattr(node, "executor", None) is not None and settings.executor == "local":
        threads["job-worker-"] = settings.workers
    models = settings.models
    return {
        "database": database_probe(node.session_factory),
        "store": store_probe(node.store),
        "workers": threads_probe(threads),
        "weights": weights_probe({"ldh": models.ldh_weights, "levels": models.levels_weights,
                                  "sij": models.sij_weights}),
    }


def _active_associations(node: Node) -> float:
    server = node.server
    return float(len(server.active_associations)) if server is not None else 0.0


def _in_flight(node: Node) -> float:
    return float(node.receiver.in_flight) if node.receiver is not None else 0.0


def start_ops_server(node: Node) -> OpsServer | None:
    """Start ``/healthz``, ``/readyz`` and ``/metrics`` for a started ``node``.

    Returns ``None`` (after logging an error) when ``http_port`` cannot be bound:
    the DICOM service goes on without its HTTP endpoint rather than not at all.
    """
    assert node.session_factory is not None, "node not started"
    gauges: dict[str, tuple[str, Callable[[], float]]] = {
        "dicom_node_active_associations": (
            "DICOM associations open in this process now.",
            functools.partial(_active_associations, node)),
        "dicom_node_cstore_in_flight": (
            "C-STORE requests being written in this process now.",
            functools.partial(_in_flight, node)),
    }
    server = OpsServer(
        node.settings.host, node.settings.http_port, probes=node_probes(node),
        metrics=functools.partial(collect_metrics, node.session_factory, node.store, gauges=gauges),
    )
    try:
        server.start()
    except OSError as exc:
        logger.error("health and metrics endpoint not started: cannot listen on %s:%d (%s)",
                     node.settings.host, node.settings.http_port, exc.strerror or exc)
        return None
    return server

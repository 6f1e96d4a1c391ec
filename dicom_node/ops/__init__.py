"""The operator's view: ``/healthz``, ``/readyz`` and ``/metrics`` on ``http_port``.

:mod:`~dicom_node.ops.http` is the server, :mod:`~dicom_node.ops.probes` the
readiness checks, :mod:`~dicom_node.ops.metrics` the Prometheus text built from
the database, and :mod:`~dicom_node.ops.node` wires them to a running node.
"""

from __future__ import annotations

from dicom_node.ops.http import OpsServer
from dicom_node.ops.metrics import collect_metrics
from dicom_node.ops.probes import Check, Probe

__all__ = ["Check", "OpsServer", "Probe", "collect_metrics"]

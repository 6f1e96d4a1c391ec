"""``dicom-node echo DEST``: C-ECHO a configured destination or ``AET@host:port``."""

from __future__ import annotations

import argparse
import re
import socket
import sys
from typing import Any

from config.settings import Settings, validate_ae_title
from dicom_node.cli import settings_from_args

_ADDRESS_RE = re.compile(r"^(?P<aet>[^@]+)@(?P<host>[^@:]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


def resolve_destination(dest: str, settings: Settings) -> tuple[str, str, int]:
    """``(ae_title, host, port)`` of a destination name or an ``AET@host:port`` string.

    Raises
    ------
    ValueError
        If ``dest`` is neither a configured name nor a valid address.
    """
    for configured in settings.destinations:
        if configured.name == dest:
            if configured.ae_title is None or configured.host is None or configured.port is None:
                raise ValueError(f"destination {dest!r} is DICOMweb only (stow_url): no C-ECHO")
            return configured.ae_title, configured.host, configured.port
    match = _ADDRESS_RE.match(dest)
    if match is None:
        names = ", ".join(d.name for d in settings.destinations) or "none configured"
        raise ValueError(f"{dest!r} is neither a destination name ({names}) nor AET@host:port")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return validate_ae_title(match["aet"]), match["host"].strip("[]"), port


def echo(ae_title: str, host: str, port: int, *, calling_ae: str, timeout: float) -> int | None:
    """Send one C-ECHO; returns the status, or None when no association was made."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        return None
    try:
        sock = assoc.dul.socket.socket if assoc.dul.socket else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        aet, host, port = resolve_destination(args.dest, settings)
    except ValueError as exc:
        print(f"echo: {exc}", file=sys.stderr)
        return 2
    status = echo(aet, host, port, calling_ae=args.calling_ae or settings.ae_title,
                  timeout=args.timeout)
    if status is None:
        print(f"echo {aet}@{host}:{port}: no association (refused, rejected or timed out)")
        return 1
    print(f"echo {aet}@{host}:{port}: status 0x{status:04X}{' (success)' if status == 0 else ''}")
    return 0 if status == 0 else 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "echo", help="C-ECHO a destination (a configured name or AET@host:port)",
    )
    parser.add_argument("dest", metavar="DEST", help="destination name or AET@host:port")
    parser.add_argument("--calling-ae", default=None, help="our AE title (default: ae_title)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.set_defaults(func=_run)

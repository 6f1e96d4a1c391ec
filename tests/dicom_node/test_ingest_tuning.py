"""Per-connection tuning of the receiver: TCP_NODELAY and the DUL reactor's idle sleep."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

from dicom_node import scp


def _event(sock: socket.socket) -> Any:
    dul = SimpleNamespace(_run_loop_delay=0.001, socket=SimpleNamespace(socket=sock))
    return SimpleNamespace(assoc=SimpleNamespace(dul=dul))


def test_conn_open_sets_nodelay_and_the_short_reactor_sleep() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        event = _event(sock)
        scp.handle_conn_open(event)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert event.assoc.dul._run_loop_delay == scp.DUL_RUN_LOOP_DELAY
    assert scp.DUL_RUN_LOOP_DELAY < 0.001  # shorter than pynetdicom's default


def test_a_real_dul_has_the_attribute_we_set() -> None:
    # if pynetdicom renames it, handle_conn_open would silently do nothing
    from pynetdicom.dul import DULServiceProvider

    dul = DULServiceProvider(SimpleNamespace())  # type: ignore[arg-type]
    assert dul._run_loop_delay == 0.001

"""Fixtures of the receiver's tests (see serve_harness.py).

Defined here, not imported into each test module, so that the session-scoped
``shared_node`` really is one ``serve`` process for the whole session.
"""

from tests.dicom_node.serve_harness import serve_node, shared_node

__all__ = ["serve_node", "shared_node"]

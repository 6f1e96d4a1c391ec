"""Delivery of results to destinations: the C-STORE sender, STOW-RS, the retry loop.

See docs/delivery.md. The jobs side writes results and calls
:func:`dicom_node.delivery.worker.enqueue_results`; the :class:`DeliveryWorker`
running in ``serve`` sends them.
"""

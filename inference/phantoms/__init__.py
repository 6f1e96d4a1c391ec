"""Synthetic lumbar-spine and sacroiliac-joint MRI studies with ground truth (seeded, deterministic).

READ ``inference/phantoms/CONTRACT.md`` FIRST: it fixes the entry points
(``generate_lumbar_study``, ``generate_sij_study``), the folder layout, the
label files and the ``ground_truth.json`` keys that the pipelines train on.
"""

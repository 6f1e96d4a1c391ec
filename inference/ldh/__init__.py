"""Lumbar disc herniation pipeline: axial T2 segmentation, MSU grading per disc level.

MONAI's split (STYLE.md): dictionary preprocessing transforms
(:mod:`inference.ldh.transforms`), an inferer that receives the network as an
argument (:mod:`inference.ldh.inferer`), post-processing
(:mod:`inference.ldh.postprocess`) and the pure MSU geometry
(:mod:`inference.msu`); :mod:`inference.ldh.pipeline` strings them together
into a :class:`~inference.ldh.result.LdhResult`.
"""

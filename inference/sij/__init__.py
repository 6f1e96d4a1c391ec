"""Sacroiliac-joint pipeline: fat-metaplasia segmentation, SPARCC-style score, axSpA probability.

Modules, in the order data flows through them:

* :mod:`inference.sij.transforms`: dictionary preprocessing (in-plane resampling,
  z-score normalisation) with fixed keys;
* :mod:`inference.sij.network`: the anisotropic 3D U-Net;
* :mod:`inference.sij.inferer`: sliding-window inference with Gaussian blending and
  flip test-time augmentation, receiving the network as an argument;
* :mod:`inference.sij.quadrants` and :mod:`inference.sij.scoring`: pure numpy
  quadrant assignment, slice selection and score arithmetic;
* :mod:`inference.sij.classifier`: the calibrated axSpA logistic regression;
* :mod:`inference.sij.pipeline`: volumes in, :class:`inference.sij.result.SijResult` out.
"""

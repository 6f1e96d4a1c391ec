"""dicom-node: an AI DICOM node for spine MRI.

Research use only. The bundled model weights are trained on synthetic phantoms.
"""

__version__ = "0.1.0"

"""Device selection and seeding shared by training and inference."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

__all__ = ["select_device", "seed_everything"]

logger = logging.getLogger(__name__)


def select_device(setting: str = "auto") -> torch.device:
    """Turn the ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a device.

    ``auto`` picks CUDA when it is available. Asking for CUDA where there is none
    raises ``RuntimeError`` rather than silently running on the CPU.
    """
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {setting!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU also ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

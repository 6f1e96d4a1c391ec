"""Device selection and seeding shared by training and inference."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["batch_stream", "select_device", "seed_everything"]

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


class _BatchSource(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """Endless batches from ``make_draw(rng)()``, one generator per DataLoader worker."""

    def __init__(self, make_draw: Callable[[np.random.Generator], Callable[[], Any]], seed: int) -> None:
        super().__init__()
        self.make_draw = make_draw
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        torch.set_num_threads(1)
        draw = self.make_draw(np.random.default_rng([self.seed, worker]))
        while True:
            yield draw()


def batch_stream(
    make_draw: Callable[[np.random.Generator], Callable[[], Any]],
    rng: np.random.Generator,
    *,
    workers: int = 0,
    seed: int = 0,
) -> Generator[Any, None, None]:
    """Training batches, drawn in the calling process or in ``workers`` background processes.

    Parameters
    ----------
    make_draw
        Called with a random generator, returns a function that draws one batch. With workers
        it is called once in each worker, with a generator seeded from ``(seed, worker)``, so the
        workers draw different batches (random transforms must be seeded from that generator).
    rng
        The generator used in-process (``workers == 0``): the batches then follow the caller's
        seeded, checkpointed random state exactly.
    workers
        Background processes (a :class:`torch.utils.data.DataLoader`): on a GPU the patch
        augmentation on one CPU core, not the network, limits the steps per second. Batches from
        workers are reproducible per worker but not in their interleaving; a resumed run draws
        new batches (pass another ``seed``, e.g. the step it resumes from).
    seed
        Seed of the workers' generators.
    """
    if workers <= 0:
        draw = make_draw(rng)
        while True:
            yield draw()
    loader = torch.utils.data.DataLoader(
        _BatchSource(make_draw, seed), batch_size=None, num_workers=workers, persistent_workers=False,
        prefetch_factor=4, pin_memory=torch.cuda.is_available(),
    )
    yield from loader

"""Left-right flip test-time augmentation of the axial inferer."""

from __future__ import annotations

import pytest
import torch

from inference.labels import AxialLabel as L
from inference.ldh.inferer import LdhInferer
from inference.ldh.pipeline import LdhPipeline
from inference.modelcard import bundled_weights

N_CLASSES = len(L)


class SideStub(torch.nn.Module):
    """Names bright pixels by the side of the image they lie on, as a trained network does.

    Canonical slices run to the patient's left along the columns: bright pixels right of the
    centre are the left facet, left of it the right facet, and their distance from the
    centre sets the confidence, so mirrored inputs give other values unless put back right.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        col = torch.arange(width, dtype=torch.float32).view(1, 1, 1, -1) - (width - 1) / 2
        bright = (x > 0.5).float()
        logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[-2:])
        logits[:, L.BACKGROUND] = 2.0 * (1 - bright[:, 0])
        logits[:, L.FACET_LEFT] = (bright * col.clamp(min=0) / 8)[:, 0]
        logits[:, L.FACET_RIGHT] = (bright * (-col).clamp(min=0) / 8)[:, 0]
        logits[:, L.DISC] = (bright * 0.5)[:, 0]
        return logits


def _slices() -> torch.Tensor:
    x = torch.zeros(2, 1, 96, 96)
    x[0, 0, 30:40, 10:20] = 1.0  # patient's right
    x[0, 0, 30:40, 70:90] = 1.0  # patient's left, further out
    x[1, 0, 50:60, 40:52] = 1.0  # across the centre
    return x


def test_flip_tta_puts_sides_back() -> None:
    x = _slices()
    plain = LdhInferer(roi_size=(96, 96))(x, SideStub())
    tta = LdhInferer(roi_size=(96, 96), flip_tta=True)(x, SideStub())
    assert tta.shape == plain.shape == (2, N_CLASSES, 96, 96)
    torch.testing.assert_close(tta, plain)
    assert tta[0, L.FACET_LEFT, 35, 80] > 0.5 and tta[0, L.FACET_RIGHT, 35, 15] > 0.5


def test_flip_tta_averages_the_mirrored_pass() -> None:
    # a network that sees only intensities cannot tell sides: the facet probability is shared
    class Blind(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(x.shape[0], N_CLASSES, *x.shape[-2:])
            logits[:, L.FACET_LEFT] = 4.0 * x[:, 0]
            return logits

    x = _slices()
    plain = LdhInferer(roi_size=(96, 96))(x, Blind())
    tta = LdhInferer(roi_size=(96, 96), flip_tta=True)(x, Blind())
    torch.testing.assert_close(tta[:, L.FACET_LEFT] + tta[:, L.FACET_RIGHT], plain[:, L.FACET_LEFT] + plain[:, L.FACET_RIGHT])
    torch.testing.assert_close(tta[:, L.FACET_LEFT], tta[:, L.FACET_RIGHT])
    torch.testing.assert_close(tta.sum(dim=1), torch.ones(2, 96, 96))


def test_pipeline_takes_flip_tta_from_the_card() -> None:
    if not bundled_weights("ldh").is_file():
        pytest.skip("no bundled ldh weights")
    assert LdhPipeline.from_weights(device="cpu", use_level_finder=False).inferer.flip_tta  # the card says on
    assert not LdhPipeline.from_weights(device="cpu", flip_tta=False).inferer.flip_tta
    mine = LdhInferer(roi_size=(96, 96))
    assert LdhPipeline.from_weights(device="cpu", flip_tta=True, inferer=mine).inferer is mine

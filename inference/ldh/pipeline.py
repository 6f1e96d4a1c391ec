"""The lumbar pipeline: axial T2 stacks in, MSU findings per disc level out.

Steps (STYLE.md's split): canonical orientation and preprocessing transforms
(:mod:`inference.ldh.transforms`), the inferer with the network passed in
(:mod:`inference.ldh.inferer`), post-processing (:mod:`inference.ldh.postprocess`),
disc levels (:mod:`inference.ldh.levels`) and the MSU geometry
(:mod:`inference.msu`) on the native pixel grid, so that the measurements are in
the scanner's own millimetres.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from config.settings import Settings
from inference.labels import DISC_LEVELS, AxialLabel
from inference.ldh.errors import LdhInputError
from inference.ldh.inferer import LdhInferer
from inference.ldh.levels import slice_levels
from inference.ldh.network import build_network
from inference.ldh.postprocess import (
    clean_labels,
    herniation_confidence,
    left_direction_in_slice,
    link_herniation_across_slices,
)
from inference.ldh.result import LdhResult, LevelFinding, SliceRef, StackSegmentation
from inference.ldh.transforms import (
    IMAGE,
    SPACING,
    TARGET_SPACING,
    canonical_orientation,
    inference_transforms,
    resample_back,
    stack_context,
)
from inference.modelcard import ModelCard, WeightsError, bundled_weights, load_weights
from inference.msu import MsuError, MsuMeasurement, measure_msu, select_max_slice
from inference.runtime import select_device

__all__ = ["LdhPipeline", "load_network", "make_segmentation"]

logger = logging.getLogger(__name__)


def load_network(weights: Path | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelCard]:
    """The segmentation network with verified weights (the bundled demo weights by default).

    Raises
    ------
    WeightsError
        Missing weights or card, or a checksum that does not match.
    """
    path = weights if weights is not None else bundled_weights("ldh")
    state, card = load_weights(path, map_location="cpu")
    config = card.extra.get("network", {})
    channels = config.get("channels")
    in_channels = int(config.get("in_channels", 1))
    context = int(card.extra.get("preprocessing", {}).get("context_slices", 0))
    if in_channels != 1 + 2 * context:
        raise WeightsError(f"card of {path}: a network of {in_channels} input channels cannot see "
                           f"{context} neighbouring slices either side (1 + 2 x context channels)")
    network = build_network(tuple(channels) if channels else None, in_channels=in_channels)
    try:
        network.load_state_dict(state.get("state_dict", state))
    except RuntimeError as exc:
        raise WeightsError(f"weights {path} do not fit the network: {exc}") from exc
    return network.to(device).eval(), card


def make_segmentation(index: int, volume: Any, labels: np.ndarray, p_herniation: np.ndarray | None = None) -> StackSegmentation:
    """A :class:`StackSegmentation` of ``volume`` (probabilities default to the labels themselves)."""
    labels = np.asarray(labels, dtype=np.uint8)
    if labels.shape != tuple(volume.array.shape):
        raise LdhInputError(f"labels {labels.shape} do not match stack {index} {tuple(volume.array.shape)}")
    if p_herniation is None:
        p_herniation = (labels == AxialLabel.HERNIATION).astype(np.float32)
    refs = tuple(
        SliceRef(
            stack_index=index,
            slice_index=k,
            series_instance_uid=str(volume.series_instance_uid),
            sop_instance_uid=str(volume.sop_instance_uids[k]),
            frame_number=volume.frame_numbers[k],
        )
        for k in range(labels.shape[0])
    )
    return StackSegmentation(
        stack_index=index,
        labels=labels,
        herniation_probability=np.asarray(p_herniation).astype(np.float16),
        slices=refs,
        levels=(),
        affine=np.asarray(volume.affine, dtype=float),
        spacing=tuple(float(v) for v in volume.spacing),  # type: ignore[arg-type]
    )


class LdhPipeline:
    """Segment axial T2 stacks and grade each disc level by the MSU classification.

    Parameters
    ----------
    network
        Any module mapping ``(N, 1 + 2 * context, h, w)`` to ``(N, 7, h, w)`` logits (a stub in tests).
    card
        Model card of the weights (named in every result), or ``None`` for an untrained or stub network.
    device
        Torch device (see :func:`inference.runtime.select_device`).
    inferer
        Defaults to :class:`~inference.ldh.inferer.LdhInferer`.
    levels_model
        Network of the level finder (``None``: its bundled weights).
    use_level_finder
        ``False`` always takes levels from the stack order.
    min_herniation_mm2
        Herniated material smaller than this on a slice is ignored.
    herniation_threshold
        Pixels whose herniation probability reaches this are herniation whatever the argmax
        says (the faint tip of a herniation often loses the argmax to the disc or the sac);
        ``None``: the argmax alone. From the card's ``postprocess`` with :meth:`from_weights`.
    link_slices
        Keep herniated material that the per-slice cleaning drops as stray (far from the slice's
        disc) when it continues a kept herniation on an adjacent slice of the stack
        (:func:`~inference.ldh.postprocess.link_herniation_across_slices`).
    pixdim
        In-plane spacing (mm) the network works at, the one it was trained at: from the card's
        ``preprocessing.pixdim_mm`` with :meth:`from_weights` (cards without it: 1 mm).
    context
        Neighbouring slices of the stack either side that the network sees with each slice
        (its input has ``1 + 2 * context`` channels): from the card's
        ``preprocessing.context_slices`` with :meth:`from_weights` (cards without it: 0, 2D).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        card: ModelCard | None = None,
        device: str | torch.device = "cpu",
        inferer: LdhInferer | None = None,
        levels_model: torch.nn.Module | None = None,
        use_level_finder: bool = True,
        min_herniation_mm2: float = 2.0,
        herniation_threshold: float | None = None,
        link_slices: bool = True,
        pixdim: float = TARGET_SPACING,
        context: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device)
        self.card = card
        self.inferer = inferer if inferer is not None else LdhInferer()
        self.levels_model = levels_model
        self.use_level_finder = use_level_finder
        self.min_herniation_mm2 = min_herniation_mm2
        self.herniation_threshold = herniation_threshold
        self.link_slices = link_slices
        self._levels_failed = False
        self.pixdim = float(pixdim)
        if not self.pixdim > 0:
            raise ValueError(f"the network's grid must be a positive spacing in mm, not {pixdim!r}")
        self._transforms = inference_transforms(self.pixdim)
        if context < 0:
            raise ValueError(f"context must be 0 or more neighbouring slices, not {context!r}")
        self.context = int(context)

    @classmethod
    def from_weights(
        cls, weights: Path | None = None, device: str = "auto", *, flip_tta: bool | None = None, **kwargs: Any
    ) -> LdhPipeline:
        """A pipeline on verified weights (bundled demo weights by default) and the configured device.

        ``flip_tta`` ``None`` takes the card's ``preprocessing.flip_tta`` (cards without it: off);
        it is ignored when an ``inferer`` is passed. The network's grid is the card's
        ``preprocessing.pixdim_mm`` (1 mm without it), its context ``preprocessing.context_slices``
        (0 without it).
        """
        dev = select_device(device)
        network, card = load_network(weights, dev)
        threshold = card.extra.get("postprocess", {}).get("herniation_threshold")
        if threshold is not None:
            kwargs.setdefault("herniation_threshold", float(threshold))
        preprocessing = card.extra.get("preprocessing", {})
        tta = bool(preprocessing.get("flip_tta", False)) if flip_tta is None else flip_tta
        kwargs.setdefault("pixdim", float(preprocessing.get("pixdim_mm", TARGET_SPACING)))
        kwargs.setdefault("context", int(preprocessing.get("context_slices", 0)))
        kwargs.setdefault("inferer", LdhInferer(flip_tta=tta))
        return cls(network, card=card, device=dev, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> LdhPipeline:
        """A pipeline on the configured weights (``models.ldh_weights``, bundled when null) and ``device``.

        The level finder uses ``models.levels_weights`` when set (its bundled weights otherwise),
        unless a ready ``levels_model`` is passed (the node loads it once, tolerating failure);
        ``models.flip_tta``, when set, overrides the card's flip TTA.
        """
        if "levels_model" not in kwargs and settings.models.levels_weights is not None:
            from inference.levels import load_levels_model

            kwargs["levels_model"] = load_levels_model(settings.models.levels_weights, select_device(settings.device))
        kwargs.setdefault("flip_tta", settings.models.flip_tta)
        return cls.from_weights(settings.models.ldh_weights, device=settings.device, **kwargs)

    # -- segmentation ---------------------------------------------------------------------

    def segment_stack(self, volume: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and herniation probability of one axial stack on its native grid.

        Returns
        -------
        tuple
            ``(labels, p_herniation)``, both ``(slices, rows, cols)``: uint8
            :class:`~inference.labels.AxialLabel` values and float32 probabilities.
        """
        array = np.asarray(volume.array, dtype=np.float32)
        if array.ndim != 3 or array.shape[0] == 0:
            raise LdhInputError(f"an axial stack must be (slices, rows, cols), got shape {array.shape}")
        orient = canonical_orientation(volume.row_direction, volume.column_direction)
        spacing_native = (float(volume.spacing[1]), float(volume.spacing[2]))
        spacing = orient.spacing(spacing_native)
        canonical = orient.apply(array)
        inputs = stack_context(canonical, self.context, towards_head=bool(volume.affine[2, 0] >= 0))
        items = [self._transforms({IMAGE: torch.from_numpy(s), SPACING: spacing}) for s in inputs]
        batch = torch.stack([torch.as_tensor(d[IMAGE]) for d in items]).to(self.device)
        probabilities = self.inferer(batch, self.network)
        canonical_probs = resample_back(probabilities, canonical.shape[1:]).cpu().numpy()
        probs = orient.invert(canonical_probs)  # (k, C, rows, cols) on the native grid
        left = tuple(left_direction_in_slice(volume.row_direction, volume.column_direction))
        raw = np.stack([self._argmax(p) for p in probs])
        labels = np.stack(
            [clean_labels(r, spacing_native, left, min_herniation_mm2=self.min_herniation_mm2) for r in raw]
        )
        if self.link_slices:
            labels = link_herniation_across_slices(raw, labels, spacing_native, min_herniation_mm2=self.min_herniation_mm2)
        return labels, probs[:, AxialLabel.HERNIATION].astype(np.float32)

    def _argmax(self, probs: np.ndarray) -> np.ndarray:
        labels = probs.argmax(axis=0)
        if self.herniation_threshold is not None:
            labels[probs[AxialLabel.HERNIATION] >= self.herniation_threshold] = AxialLabel.HERNIATION
        return labels

    def _load_levels_model(self) -> torch.nn.Module | None:
        """The bundled level network, loaded once per pipeline rather than once per study.

        ``None`` (and no second try) when it cannot be loaded: :func:`slice_levels` then loads
        it per study itself and falls back to the stack order with the reason, as without this.
        """
        try:
            from inference.levels import LevelsError, load_levels_model
        except ImportError:  # optional at run time: slice_levels falls back to the stack order
            self._levels_failed = True
            return None
        try:
            return load_levels_model(device=self.device)
        except LevelsError as exc:
            logger.warning("disc-level model not loaded (%s); levels per study or from the stack order", exc)
            self._levels_failed = True
            return None

    # -- the whole study ------------------------------------------------------------------

    def __call__(self, axial: Sequence[Any], sagittal: Any | None = None) -> LdhResult:
        """Run the pipeline on a study's axial T2 stacks (and its sagittal T2, for levels).

        Parameters
        ----------
        axial
            One :class:`~inference.volume.Volume` per axial stack.
        sagittal
            The sagittal T2 volume, or ``None`` (levels are then inferred from stack order).

        Raises
        ------
        LdhInputError
            Without any axial stack.
        """
        if not axial:
            raise LdhInputError("the study has no axial T2 stack to grade")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        segs = self.segment(axial)
        timings["segmentation"] = time.perf_counter() - start
        t0 = time.perf_counter()
        findings, warnings = self.grade(axial, segs, sagittal)
        timings["levels_and_grading"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - start
        card = self.card
        return LdhResult(
            findings=findings,
            segmentations=segs,
            model_name=card.name if card else "ldh-untrained",
            model_version=card.version if card else "0",
            model_sha256=card.sha256 if card else None,
            notice=card.notice if card else "research use only; untrained or stub network",
            warnings=warnings,
            timings_s=timings,
        )

    def segment(self, axial: Sequence[Any]) -> list[StackSegmentation]:
        """Segment every axial stack (levels not filled in yet)."""
        segs: list[StackSegmentation] = []
        for index, volume in enumerate(axial):
            labels, p_hern = self.segment_stack(volume)
            segs.append(make_segmentation(index, volume, labels, p_hern))
        return segs

    def grade(
        self, axial: Sequence[Any], segs: Sequence[StackSegmentation], sagittal: Any | None = None
    ) -> tuple[list[LevelFinding], list[str]]:
        """Assign levels to the slices of ``segs`` and read the MSU grade of each level.

        Works on any segmentation aligned with ``axial`` (the network's, or a
        reference labelling), so the grading can be checked on its own.
        """
        if self.use_level_finder and sagittal is not None and self.levels_model is None and not self._levels_failed:
            self.levels_model = self._load_levels_model()
        levels = slice_levels(axial, sagittal, model=self.levels_model, use_level_finder=self.use_level_finder)
        by_level: dict[str | None, list[tuple[int, int]]] = defaultdict(list)
        for seg, stack_levels in zip(segs, levels):
            seg.levels = tuple(lv.level for lv in stack_levels)
            for k, lv in enumerate(stack_levels):
                by_level[lv.level].append((seg.stack_index, k))
        warnings: list[str] = []
        if None in by_level:
            warnings.append(f"{len(by_level[None])} axial slice(s) could not be given a disc level and were not graded")
        findings = [
            self._grade_level(level, slices, list(segs), axial, levels)
            for level, slices in by_level.items()
            if level is not None
        ]
        findings.sort(key=lambda f: DISC_LEVELS.index(f.level) if f.level in DISC_LEVELS else len(DISC_LEVELS))
        return findings, warnings

    def _grade_level(
        self,
        level: str,
        slices: list[tuple[int, int]],
        segs: list[StackSegmentation],
        axial: Sequence[Any],
        levels: list[list[Any]],
    ) -> LevelFinding:
        readings: list[MsuMeasurement | None] = []
        problems: list[str] = []
        for stack, k in slices:
            volume = axial[stack]
            spacing = (float(volume.spacing[1]), float(volume.spacing[2]))
            try:
                # the left-right axis from the facets themselves, as the reference reading does;
                # sides are already fixed by post-processing from the orientation
                readings.append(measure_msu(segs[stack].labels[k], spacing, min_herniation_mm2=self.min_herniation_mm2))
            except MsuError as exc:
                readings.append(None)
                problems.append(str(exc))
        best = select_max_slice(readings)
        if best is None:  # normal level: read on the slice with the most disc that could be measured
            disc_area = [
                float((segs[s].labels[k] == AxialLabel.DISC).sum()) if r is not None else -1.0
                for (s, k), r in zip(slices, readings)
            ]
            best = int(np.argmax(disc_area)) if disc_area and max(disc_area) >= 0 else None
        first_level = levels[slices[0][0]][slices[0][1]]
        warnings = list(dict.fromkeys(first_level.warnings))
        refs = tuple(segs[s].slices[k] for s, k in slices)
        hern_probs = [segs[s].herniation_probability[k].astype(np.float32) for s, k in slices]
        volume_mm3 = float(
            sum(
                (segs[s].labels[k] == AxialLabel.HERNIATION).sum() * float(np.prod(axial[s].spacing))
                for s, k in slices
            )
        )
        common: dict[str, Any] = dict(
            level=level,
            level_method=str(first_level.method),
            level_inferred=first_level.method != "sagittal",
            level_confidence=float(np.mean([levels[s][k].confidence for s, k in slices])),
            slices=refs,
            volume_mm3=volume_mm3,
        )
        if best is None or readings[best] is None:
            reason = problems[0] if problems else "no slice to read"
            unreadable = f"MSU not readable at {level}: {reason}"
            logger.warning(unreadable)
            return LevelFinding(
                size=0, zone=None, side=None, depth_mm=0.0, reference_mm=float("nan"), ratio=0.0,
                area_mm2=0.0, bbox=None, apex_px=None, fifty_percent_px=None, intrafacet_line_px=None,
                quarter_points_px=None, confidence=0.0, slice=None, warnings=tuple(warnings + [unreadable]),
                **common,
            )
        m = readings[best]
        assert m is not None
        stack, k = slices[best]
        pixel = (float(axial[stack].spacing[1]), float(axial[stack].spacing[2]))

        def px(point: np.ndarray | None) -> tuple[float, float] | None:
            return None if point is None else (float(point[0] / pixel[0]), float(point[1] / pixel[1]))

        def px2(point: np.ndarray) -> tuple[float, float]:
            return (float(point[0] / pixel[0]), float(point[1] / pixel[1]))

        if m.size > 0:
            confidence = herniation_confidence(hern_probs[best], segs[stack].labels[k] == AxialLabel.HERNIATION)
        else:
            confidence = 1.0 - float(max(float(p.max()) for p in hern_probs))
        line = (px2(m.line.right), px2(m.line.left))
        return LevelFinding(
            size=m.size,
            zone=m.zone,
            side=m.side,
            depth_mm=m.depth_mm,
            reference_mm=m.reference_mm,
            ratio=m.ratio,
            area_mm2=m.area_mm2,
            bbox=m.bbox,
            apex_px=px(m.apex_mm),
            fifty_percent_px=px(m.fifty_percent_mm),
            intrafacet_line_px=line,
            quarter_points_px=tuple(px2(q) for q in m.line.quarter_points()),
            confidence=float(confidence),
            slice=refs[best],
            warnings=tuple(warnings),
            **common,
        )


"""Lumbar-spine MRI phantom studies: DICOM series plus ground truth, from a seed.

:func:`generate_lumbar_study` draws one 3D anatomy (:mod:`.lumbar_anatomy`),
rasterises it at about 1 mm (:mod:`.lumbar_raster`), adds herniations and facet
joints (:mod:`.lumbar_herniation`), plans a sagittal T2, a sagittal T1 and an
axial T2 series with one stack per disc level L3/L4, L4/L5 and L5/S1
(:mod:`.lumbar_protocol`), renders them (:mod:`.lumbar_render`), samples the
label masks at every pixel centre, reads the MSU class of each level from the
axial masks (:mod:`.msu_truth`) and writes everything (see docs/phantoms.md):

``<out>/dicom/<NN>_<role>/IM*.dcm``
    One folder per series (roles ``sag_t2``, ``sag_t1``, ``ax_t2``).
``<out>/labels/<role>.npy``
    ``(instances, rows, columns)`` uint8 label masks in InstanceNumber order:
    :class:`~inference.labels.AxialLabel` for ``ax_t2``,
    :class:`~inference.labels.SagittalLabel` for the sagittal series.
``<out>/ground_truth.json``
    Per disc level the MSU size, zone and side read from the masks, the
    intended class, the measurements and the slice read; the series, their
    SOP Instance UIDs and stacks; disc and vertebra centres (LPS).

Same seed, same bytes: every random choice comes from ``numpy.random.default_rng``
streams keyed by ``(seed, part)``, and every UID, date and time from the seed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.labels import AxialLabel, SagittalLabel
from inference.phantoms.dicomio import PhantomSeries, PhantomStudy, deterministic_uid, write_mr_series
from inference.phantoms.lumbar_anatomy import SpineAnatomy, build_spine
from inference.phantoms.lumbar_herniation import (
    AXIAL_LEVELS,
    HerniationPlan,
    paint_facets,
    paint_herniation,
    plan_herniation,
)
from inference.phantoms.lumbar_protocol import VENDORS, SeriesPlan, plan_axial, plan_sagittal
from inference.phantoms.lumbar_raster import VolumeGrid, paint_spine
from inference.phantoms.lumbar_render import (
    StackGeometry,
    contrast_tables,
    draw_appearance,
    render_stack,
    sample_labels,
)
from inference.phantoms.lumbar_tissue import axial_label_table, sagittal_label_table
from inference.phantoms.msu_truth import MsuGeometryError, read_msu_stack

__all__ = ["FORMAT", "LumbarStudy", "generate_lumbar_study"]

logger = logging.getLogger(__name__)

#: ``ground_truth.json`` format tag.
FORMAT = "dicom-node-phantom-lumbar/1"
#: Voxel size of the 3D anatomy (mm).
VOXEL_MM = 1.0

_STREAMS = {"anatomy": 1, "herniation": 2, "protocol": 3, "contrast": 4, "appearance": 5, "noise": 6, "header": 7}


def _rng(seed: int, part: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[part], *more])


@dataclass(frozen=True)
class LumbarStudy:
    """What :func:`generate_lumbar_study` wrote."""

    root: Path
    series_dirs: dict[str, Path]
    label_paths: dict[str, Path]
    truth_path: Path
    truth: dict[str, object]


def _grid_for(stacks: list[StackGeometry], spacing: float) -> VolumeGrid:
    corners = []
    for stack in stacks:
        for plane in stack.planes:
            rows, cols = plane.shape
            extent_r = plane.col_dir * plane.spacing[0] * (rows - 1)
            extent_c = plane.row_dir * plane.spacing[1] * (cols - 1)
            for a in (0.0, 1.0):
                for b in (0.0, 1.0):
                    for t in (-1.0, 1.0):
                        corners.append(plane.position + a * extent_r + b * extent_c
                                       + t * plane.normal * stack.thickness / 2)
    pts = np.array(corners)
    lo, hi = pts.min(axis=0) - 3.0, pts.max(axis=0) + 3.0
    return VolumeGrid.covering(lo, hi, spacing)


def _series_plans(rng: np.random.Generator, spine: SpineAnatomy, vendor: str) -> list[SeriesPlan]:
    sag_t2, sag_t1 = plan_sagittal(rng, spine)
    axial = plan_axial(rng, spine, AXIAL_LEVELS)
    order = list(AXIAL_LEVELS)
    if rng.random() < 0.5:
        axial, order = axial[::-1], order[::-1]
    return [
        SeriesPlan("sag_t2", "T2", (sag_t2,), ("",), float(rng.uniform(85, 120)), float(rng.uniform(2800, 4500)),
                   int(rng.integers(13, 26)), 90.0 if vendor != "siemens" else 150.0),
        SeriesPlan("sag_t1", "T1", (sag_t1,), ("",), float(rng.uniform(8, 14)), float(rng.uniform(400, 700)),
                   int(rng.integers(3, 6)), 90.0 if vendor != "siemens" else 150.0),
        SeriesPlan("ax_t2", "T2", tuple(axial), tuple(order), float(rng.uniform(85, 115)),
                   float(rng.uniform(3000, 5500)), int(rng.integers(13, 26)), 90.0 if vendor != "siemens" else 150.0),
    ]


def _study_header(rng: np.random.Generator, seed: int, vendor: str) -> PhantomStudy:
    style = VENDORS[vendor]
    year = int(rng.integers(2019, 2026))
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    age = int(rng.integers(22, 80))
    birth = f"{year - age:04d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    field = float(rng.choice([1.5, 1.5, 3.0]))
    sex = str(rng.choice(["F", "M"]))
    return PhantomStudy(
        study_instance_uid=deterministic_uid("lumbar", seed, "study"),
        frame_of_reference_uid=deterministic_uid("lumbar", seed, "for"),
        patient_id=f"PHL{seed:06d}",
        patient_name=f"PHANTOM^LUMBAR{seed}",
        patient_birth_date=birth,
        patient_sex=sex,
        study_date=f"{year:04d}{month:02d}{day:02d}",
        study_time=f"{int(rng.integers(7, 20)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        accession_number=f"A{seed:08d}",
        study_description=str(rng.choice(style.study_descriptions)),
        manufacturer=style.manufacturer,
        model_name=str(rng.choice(style.models)),
        field_strength=field,
        patient_weight=float(round(rng.uniform(50, 110), 1)),
    )


def generate_lumbar_study(
    out_dir: Path | str,
    seed: int,
    *,
    herniations: dict[str, tuple[int, str | None, str | None]] | None = None,
    voxel_mm: float = VOXEL_MM,
) -> LumbarStudy:
    """Write one lumbar phantom study and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Study folder (created).
    seed
        Everything follows from it: same seed, same bytes.
    herniations
        Optional forced class per level, ``{"L4/L5": (size, zone, side)}``
        (size 0 for a normal disc); other levels are drawn.
    voxel_mm
        Voxel size of the 3D anatomy.

    Returns
    -------
    LumbarStudy
    """
    out = Path(out_dir)
    spine = build_spine(_rng(seed, "anatomy"))
    header_rng = _rng(seed, "header")
    vendor = str(header_rng.choice(sorted(VENDORS)))
    study = _study_header(header_rng, seed, vendor)
    plans = _series_plans(_rng(seed, "protocol"), spine, vendor)
    grid = _grid_for([s for p in plans for s in p.stacks], voxel_mm)
    tissue = paint_spine(grid, spine)

    h_rng = _rng(seed, "herniation")
    forced = herniations or {}
    hplans: dict[str, HerniationPlan] = {}
    for level in AXIAL_LEVELS:
        disc = spine.discs[level]
        size, zone, side = forced.get(level, (None, None, None))
        hplans[level] = plan_herniation(h_rng, disc, size=size, zone=zone, side=side)
        paint_herniation(tissue, grid, disc, hplans[level])
    paint_facets(tissue, grid, spine)

    degeneration = [d.degeneration for d in spine.discs.values()]
    contrasts = contrast_tables(_rng(seed, "contrast"), degeneration, spine.muscle_fat)
    app = draw_appearance(_rng(seed, "appearance"), grid, spine.canal_curve[len(spine.canal_curve) // 2])
    tables = {"ax_t2": axial_label_table(), "sag_t2": sagittal_label_table(), "sag_t1": sagittal_label_table()}
    style = VENDORS[vendor]

    series_dirs: dict[str, Path] = {}
    label_paths: dict[str, Path] = {}
    series_truth = []
    level_slices: dict[str, tuple[int, np.ndarray, tuple[float, float], list[str]]] = {}
    signal_volumes: dict[str, np.ndarray] = {}
    body_part = "LSPINE" if header_rng.random() < 0.85 else "SPINE"
    for number, plan in enumerate(plans, start=1):
        series_number = number * style.series_number_step + (1 if style.series_number_step > 1 else 1)
        desc = style.descriptions[plan.role]
        uid = deterministic_uid("lumbar", seed, "series", plan.role)
        stack0 = plan.stacks[0]
        plane0 = stack0.planes[0]
        spacing_between = (
            float(np.linalg.norm(stack0.planes[1].position - plane0.position)) if len(stack0.planes) > 1 else
            stack0.thickness
        )
        acq = stack0.acquisition
        series = PhantomSeries(
            series_instance_uid=uid,
            series_number=series_number,
            series_description=desc,
            body_part_examined=body_part,
            echo_time=round(plan.echo_time, 2),
            repetition_time=round(plan.repetition_time, 1),
            scanning_sequence="SE",
            sequence_variant=style.sequence_variant,
            scan_options=style.scan_options,
            echo_train_length=plan.echo_train_length,
            flip_angle=plan.flip_angle,
            sequence_name=style.sequence_names[plan.role],
            extra={
                "SpacingBetweenSlices": f"{spacing_between:.4g}",
                "AcquisitionMatrix": [0, acq[1], acq[0], 0] if plan.role == "ax_t2" else [acq[1], 0, 0, acq[0]],
                "InPlanePhaseEncodingDirection": "ROW" if plan.role == "ax_t2" else "COL",
                "PixelBandwidth": f"{header_rng.uniform(130.0, 330.0):.4g}",
            },
        )
        folder = out / "dicom" / f"{series_number:02d}_{plan.role}"
        if plan.weighting not in signal_volumes:
            signal_volumes[plan.weighting] = contrasts[plan.weighting].signal[tissue]
        noise = _rng(seed, "noise", number)
        labels_all = []
        sops: list[str] = []
        stacks_truth = []
        offset = 0
        for stack, level in zip(plan.stacks, plan.levels):
            pixels = render_stack(tissue, grid, signal_volumes[plan.weighting], contrasts[plan.weighting],
                                  stack, app, noise)
            labels = np.stack([sample_labels(tissue, grid, p, tables[plan.role]) for p in stack.planes])
            write_mr_series(
                folder, pixels,
                positions=np.array([p.position for p in stack.planes]),
                orientation=[*plane0.row_dir, *plane0.col_dir] if level == "" else
                [*stack.planes[0].row_dir, *stack.planes[0].col_dir],
                pixel_spacing=stack.planes[0].spacing,
                slice_thickness=stack.thickness,
                study=study, series=series, instance_offset=offset,
            )
            sops += [deterministic_uid(uid, "sop", offset + i + 1) for i in range(len(stack.planes))]
            if level:
                level_slices[level] = (offset, labels, stack.planes[0].spacing, sops[offset:])
                stacks_truth.append({"level": level, "first_index": offset, "n_slices": len(stack.planes)})
            labels_all.append(labels)
            offset += len(stack.planes)
        label_path = out / "labels" / f"{plan.role}.npy"
        label_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(label_path, np.concatenate(labels_all))
        series_dirs[plan.role] = folder
        label_paths[plan.role] = label_path
        series_truth.append({
            "role": plan.role,
            "series_instance_uid": uid,
            "series_number": series_number,
            "series_description": desc,
            "folder": str(folder.relative_to(out)),
            "labels": str(label_path.relative_to(out)),
            "label_classes": "AxialLabel" if plan.role == "ax_t2" else "SagittalLabel",
            "sop_instance_uids": sops,
            "stacks": stacks_truth,
        })

    discs_truth = []
    for level in AXIAL_LEVELS:
        offset, labels, spacing, sops = level_slices[level]
        intended = hplans[level].intended()
        try:
            index, reading = read_msu_stack(labels, spacing)
            measured: dict[str, object] = reading.as_dict()
            size, zone, side, label = reading.size, reading.zone, reading.side, reading.label
        except MsuGeometryError as exc:
            logger.warning("seed %d level %s: MSU rule not applicable: %s", seed, level, exc)
            index, measured, size, zone, side, label = 0, {"error": str(exc)}, None, None, None, None
        if label != intended["label"] or (size and side != intended["side"]):
            logger.warning("seed %d level %s: intended %s, masks read %s", seed, level, intended["label"], label)
        discs_truth.append({
            "level": level,
            "msu_size": size,
            "msu_zone": zone,
            "msu_side": side,
            "msu_label": label,
            "slice_index": offset + index,
            "sop_instance_uid": sops[index],
            "measurements": measured,
            "intended": intended,
        })

    truth: dict[str, object] = {
        "format": FORMAT,
        "kind": "lumbar",
        "seed": int(seed),
        "study_instance_uid": study.study_instance_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "vendor": vendor,
        "label_values": {
            "AxialLabel": {m.name: int(m) for m in AxialLabel},
            "SagittalLabel": {m.name: int(m) for m in SagittalLabel},
        },
        "series": series_truth,
        "discs": discs_truth,
        "disc_centres_lps": {n: [round(float(c), 2) for c in d.frame.origin] for n, d in spine.discs.items()},
        "disc_normals_lps": {n: [round(float(c), 5) for c in d.frame.u] for n, d in spine.discs.items()},
        "vertebra_centres_lps": {n: [round(float(c), 2) for c in v.frame.origin] for n, v in spine.vertebrae.items()},
    }
    truth_path = out / "ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    logger.debug("wrote lumbar phantom seed %d to %s", seed, out)
    return LumbarStudy(out, series_dirs, label_paths, truth_path, truth)

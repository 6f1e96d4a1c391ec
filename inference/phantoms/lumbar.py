"""Lumbar-spine MRI phantom studies: DICOM series plus ground truth, from a seed.

:func:`generate_lumbar_study` draws one 3D anatomy (:mod:`.lumbar_anatomy`),
rasterises it at about 1 mm (:mod:`.lumbar_raster`), adds herniations and facet
joints (:mod:`.lumbar_herniation`), plans a sagittal T2, a sagittal T1 and an
axial T2 series with one stack per disc level L3/L4, L4/L5 and L5/S1
(:mod:`.lumbar_protocol`), renders them (:mod:`.lumbar_render`), samples the
label masks at every pixel centre, reads the MSU class of each level from the
axial masks (:mod:`.msu_truth`) and writes everything (see docs/phantoms.md):

``<out>/dicom/<key>/IM*.dcm``
    One folder per series (keys ``sag_t2``, ``sag_t1``, ``ax_t2``).
``<out>/labels/<key>.npz``
    ``labels``: ``(instances, rows, columns)`` uint8 masks in InstanceNumber
    order (:class:`~inference.labels.AxialLabel` for ``ax_t2``,
    :class:`~inference.labels.SagittalLabel` for the sagittal series) and
    ``sop_instance_uids`` in the same order.
``<out>/ground_truth.json``
    The keys of inference/phantoms/CONTRACT.md: per disc level L1/L2..L5/S1
    the MSU size, zone and side read from the masks (plus the intended class
    and the measurements), the series and their stacks, disc centres and
    normals (LPS).

Same seed, same bytes: every random choice comes from ``numpy.random.default_rng``
streams keyed by ``(seed, part)``, and every UID, date and time from the seed.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.phantoms.dicomio import PhantomSeries, PhantomStudy, deterministic_uid, write_mr_series
from inference.phantoms.lumbar_anatomy import SpineAnatomy, build_spine, rotated_spine
from inference.phantoms.lumbar_herniation import (
    AXIAL_LEVELS,
    HerniationPlan,
    paint_facet_pair,
    paint_facets,
    paint_herniation,
    plan_herniation,
)
from inference.phantoms.lumbar_protocol import VENDORS, SeriesPlan, plan_axial, plan_sagittal, rotation
from inference.phantoms.lumbar_raster import VolumeGrid, paint_spine
from inference.phantoms.lumbar_render import (
    StackGeometry,
    contrast_tables,
    draw_appearance,
    render_stack,
    sample_labels,
)
from inference.phantoms.lumbar_tissue import axial_label_table, sagittal_label_table
from inference.phantoms.msu_truth import MsuGeometryError, MsuReading, read_msu_stack

__all__ = ["LumbarScene", "axial_label_stacks", "build_lumbar_scene", "generate_lumbar_study", "read_level"]

logger = logging.getLogger(__name__)

#: ``ground_truth.json`` ``format_version`` (inference/phantoms/CONTRACT.md).
FORMAT_VERSION = 1
#: Bumped whenever the same seed draws a different study.
GENERATOR_VERSION = "lumbar-2"
#: Series keys (folders under ``dicom/`` and files under ``labels/``).
ROLES: tuple[str, ...] = ("sag_t2", "sag_t1", "ax_t2")
#: Disc levels listed in ``ground_truth.json``.
LUMBAR_LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
#: Redraws of a herniation whose masks read another class than drawn.
MAX_REDRAWS = 8
#: Voxel size of the 3D anatomy (mm).
VOXEL_MM = 1.0

_STREAMS = {
    "anatomy": 1, "herniation": 2, "protocol": 3, "contrast": 4, "appearance": 5, "noise": 6, "header": 7,
    "posture": 8,
}


def _rng(seed: int, part: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[part], *more])


@dataclass
class LumbarScene:
    """Everything drawn for one seed before pixels are rendered."""

    seed: int
    spine: SpineAnatomy  #: upright, as drawn into ``tissue``
    patient_spine: SpineAnatomy  #: turned into patient space (``grid.rotation``)
    vendor: str
    study: PhantomStudy
    plans: list[SeriesPlan]
    grid: VolumeGrid
    tissue: np.ndarray
    herniations: dict[str, HerniationPlan]
    #: the axial series' label slices per stack (stack order), as last checked against the
    #: herniation plans; ``None`` when the last redraw was not checked again (labels are sampled anew)
    axial_labels: tuple[np.ndarray, ...] | None = None


def _posture(rng: np.random.Generator) -> np.ndarray:
    """How the patient lies on the table: a small axial rotation and a lateral lean."""
    axial = float(np.clip(rng.normal(0.0, 2.5), -6.0, 6.0))
    lean = float(np.clip(rng.normal(0.0, 1.5), -4.0, 4.0))
    return rotation(np.array([0.0, 0.0, 1.0]), axial) @ rotation(np.array([0.0, 1.0, 0.0]), lean)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``numpy.savez_compressed`` with fixed zip timestamps (same arrays, same bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            archive.writestr(info, buffer.getvalue())


def _grid_for(stacks: list[StackGeometry], spacing: float, rotation: np.ndarray) -> VolumeGrid:
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
    pts = np.array(corners) @ rotation  # patient -> anatomy space
    lo, hi = pts.min(axis=0) - 3.0, pts.max(axis=0) + 3.0
    return VolumeGrid.covering(lo, hi, spacing, rotation)


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


def build_lumbar_scene(
    seed: int,
    *,
    herniations: dict[str, tuple[int, str | None, str | None]] | None = None,
    voxel_mm: float = VOXEL_MM,
    roles: tuple[str, ...] = ROLES,
) -> LumbarScene:
    """Draw the anatomy, the plan and the 3D tissue volume of one seed (no pixels).

    Parameters
    ----------
    seed
        The study's seed.
    herniations
        Optional forced class per level, ``{"L4/L5": (size, zone, side)}``
        (size 0 for a normal disc); other levels are drawn. Forcing one level
        does not change what is drawn at the others.
    voxel_mm
        Voxel size of the 3D anatomy.
    roles
        Series whose field of view the volume must cover (all by default; the
        axial one alone makes a smaller volume for label-only checks).
    """
    spine = build_spine(_rng(seed, "anatomy"))
    turn = _posture(_rng(seed, "posture"))
    patient_spine = rotated_spine(spine, turn)
    header_rng = _rng(seed, "header")
    vendor = str(header_rng.choice(sorted(VENDORS)))
    study = _study_header(header_rng, seed, vendor)
    plans = _series_plans(_rng(seed, "protocol"), patient_spine, vendor)
    grid = _grid_for([s for p in plans if p.role in roles for s in p.stacks], voxel_mm, turn)
    tissue = paint_spine(grid, spine)
    base = tissue.copy()
    forced = herniations or {}
    hplans: dict[str, HerniationPlan] = {}
    blocks: dict[str, tuple[slice, slice, slice] | None] = {}
    classes: dict[str, tuple[int | None, str | None, str | None]] = {}
    for index, level in enumerate(AXIAL_LEVELS):
        disc = spine.discs[level]
        classes[level] = forced.get(level, (None, None, None))
        size, zone, side = classes[level]
        hplans[level] = plan_herniation(_rng(seed, "herniation", index), disc, size=size, zone=zone, side=side)
        blocks[level] = paint_herniation(tissue, grid, disc, hplans[level])
    paint_facets(tissue, grid, spine)
    scene = LumbarScene(seed, spine, patient_spine, vendor, study, plans, grid, tissue, hplans)
    # 1 mm voxels can move a tip across a class boundary: redraw such a level
    # (same class, next random draw) until the masks read the intended class
    for attempt in range(1, MAX_REDRAWS + 1):
        stacks = axial_label_stacks(scene)
        wrong = [lv for lv in AXIAL_LEVELS if not _reads_as_drawn(*stacks[lv], hplans[lv])]
        if not wrong:
            axial = next(p for p in scene.plans if p.role == "ax_t2")
            if len(stacks) == len(axial.stacks):  # one stack per level: the generator reuses them
                scene.axial_labels = tuple(labels for labels, _ in stacks.values())
            break
        for level in wrong:
            index = AXIAL_LEVELS.index(level)
            disc = spine.discs[level]
            block = blocks[level]
            if block is not None:
                tissue[block] = base[block]
            plan = hplans[level]
            hplans[level] = plan_herniation(
                _rng(seed, "herniation", index, attempt), disc, size=plan.size, zone=plan.zone, side=plan.side
            )
            blocks[level] = paint_herniation(tissue, grid, disc, hplans[level])
            paint_facet_pair(tissue, grid, disc)
            logger.debug("seed %d level %s: redrawn (attempt %d)", seed, level, attempt)
    return scene


def _reads_as_drawn(labels: np.ndarray, spacing: tuple[float, float], plan: HerniationPlan) -> bool:
    try:
        _, reading = read_msu_stack(labels, spacing)
    except MsuGeometryError:
        return False
    return reading.label == plan.intended()["label"] and (reading.size == 0 or reading.side == plan.side)


def axial_label_stacks(scene: LumbarScene) -> dict[str, tuple[np.ndarray, tuple[float, float]]]:
    """Axial label slices of each level's stack (sampled at the pixel centres) and their pixel spacing."""
    table = axial_label_table()
    plan = next(p for p in scene.plans if p.role == "ax_t2")
    out = {}
    for stack, level in zip(plan.stacks, plan.levels):
        labels = np.stack([sample_labels(scene.tissue, scene.grid, p, table, stack.thickness) for p in stack.planes])
        out[level] = (labels, stack.planes[0].spacing)
    return out


def read_level(
    labels: np.ndarray, spacing: tuple[float, float], plan: HerniationPlan, seed: int
) -> tuple[int, MsuReading | None]:
    """The MSU reading of one level's axial labels (``None`` when the rule cannot be applied)."""
    try:
        index, reading = read_msu_stack(labels, spacing)
    except MsuGeometryError as exc:
        logger.warning("seed %d level %s: MSU rule not applicable: %s", seed, plan.level, exc)
        return 0, None
    if reading.label != plan.intended()["label"] or (reading.size and reading.side != plan.side):
        logger.warning(
            "seed %d level %s: drawn as %s, the masks read %s", seed, plan.level, plan.intended()["label"], reading.label
        )
    return index, reading


def generate_lumbar_study(
    out_dir: Path | str,
    seed: int,
    *,
    herniations: dict[str, tuple[int, str | None, str | None]] | None = None,
    voxel_mm: float = VOXEL_MM,
) -> Path:
    """Write one lumbar phantom study and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Study folder (created).
    seed
        Everything follows from it: same seed, same bytes.
    herniations
        Optional forced class per level (see :func:`build_lumbar_scene`).
    voxel_mm
        Voxel size of the 3D anatomy.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out = Path(out_dir)
    scene = build_lumbar_scene(seed, herniations=herniations, voxel_mm=voxel_mm)
    spine, grid, tissue, study = scene.patient_spine, scene.grid, scene.tissue, scene.study
    degeneration = [d.degeneration for d in spine.discs.values()]
    contrasts = contrast_tables(_rng(seed, "contrast"), degeneration, spine.muscle_fat)
    app = draw_appearance(_rng(seed, "appearance"), grid, spine.canal_curve[len(spine.canal_curve) // 2])
    tables = {"ax_t2": axial_label_table(), "sag_t2": sagittal_label_table(), "sag_t1": sagittal_label_table()}
    style = VENDORS[scene.vendor]
    header_rng = _rng(seed, "header", 1)
    body_part = "LSPINE" if header_rng.random() < 0.85 else "SPINE"

    series_truth: dict[str, object] = {}
    level_slices: dict[str, tuple[int, int, np.ndarray, tuple[float, float], list[str]]] = {}
    signal_volumes: dict[str, np.ndarray] = {}
    numbered = list(enumerate(scene.plans, start=1))
    # one signal volume alive at a time: the T2 series first, then the T1 ones
    numbered.sort(key=lambda item: item[1].weighting != "T2")
    for number, plan in numbered:
        series_number = number + 1 if style.series_number_step == 1 else number * style.series_number_step + 1
        desc = style.descriptions[plan.role]
        uid = deterministic_uid("lumbar", seed, "series", plan.role)
        stack0 = plan.stacks[0]
        spacing_between = (
            float(np.linalg.norm(stack0.planes[1].position - stack0.planes[0].position))
            if len(stack0.planes) > 1 else stack0.thickness
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
        folder = out / "dicom" / plan.role
        if plan.weighting not in signal_volumes:
            signal_volumes.clear()
            signal_volumes[plan.weighting] = contrasts[plan.weighting].signal[tissue]
        noise = _rng(seed, "noise", number)
        labels_all = []
        sops: list[str] = []
        stacks_truth = []
        offset = 0
        for stack_index, (stack, level) in enumerate(zip(plan.stacks, plan.levels)):
            pixels = render_stack(tissue, grid, signal_volumes[plan.weighting], contrasts[plan.weighting],
                                  stack, app, noise)
            if plan.role == "ax_t2" and scene.axial_labels is not None:
                labels = scene.axial_labels[stack_index]  # sampled by the scene's last check
            else:
                labels = np.stack(
                    [sample_labels(tissue, grid, p, tables[plan.role], stack.thickness) for p in stack.planes]
                )
            first = stack.planes[0]
            write_mr_series(
                folder, pixels,
                positions=np.array([p.position for p in stack.planes]),
                orientation=[*first.row_dir, *first.col_dir],
                pixel_spacing=first.spacing,
                slice_thickness=stack.thickness,
                study=study, series=series, instance_offset=offset,
            )
            stack_sops = [deterministic_uid(uid, "sop", offset + i + 1) for i in range(len(stack.planes))]
            sops += stack_sops
            if level:
                level_slices[level] = (stack_index, offset, labels, first.spacing, stack_sops)
                stacks_truth.append({"level": level, "first_index": offset, "n_slices": len(stack.planes)})
            labels_all.append(labels)
            offset += len(stack.planes)
        label_path = out / "labels" / f"{plan.role}.npz"
        label_path.parent.mkdir(parents=True, exist_ok=True)
        _save_npz(label_path, labels=np.concatenate(labels_all), sop_instance_uids=np.array(sops))
        series_truth[plan.role] = {
            "series_instance_uid": uid,
            "series_description": desc,
            "series_number": series_number,
            "folder": f"dicom/{plan.role}",
            "labels": f"labels/{plan.role}.npz",
            "label_enum": "AxialLabel" if plan.role == "ax_t2" else "SagittalLabel",
            "stacks": stacks_truth,
        }

    discs_truth = []
    for level in LUMBAR_LEVELS:
        disc = spine.discs[level]
        entry: dict[str, object] = {
            "level": level,
            "msu_size": 0,
            "zone": None,
            "side": None,
            "depth_mm": None,
            "ratio": None,
            "center_lps": [round(float(c), 3) for c in disc.frame.origin],
            "normal_lps": [round(float(c), 6) for c in disc.frame.u],
            "axial_stack": None,
            "max_slice_sop_instance_uid": None,
            "migrated": False,
        }
        if level in level_slices:
            stack_index, offset, labels, spacing, sops = level_slices[level]
            hplan = scene.herniations[level]
            index, reading = read_level(labels, spacing, hplan, seed)
            entry["axial_stack"] = stack_index
            entry["intended"] = hplan.intended()
            entry["read_slice_sop_instance_uid"] = sops[index]
            if reading is None:
                entry["msu_size"] = None
            else:
                entry["measurements"] = reading.as_dict()
                entry["msu_size"] = reading.size
                if reading.size > 0:
                    entry["zone"] = reading.zone
                    entry["side"] = reading.side or "central"
                    entry["depth_mm"] = round(float(reading.reach_mm or 0.0), 3)
                    entry["ratio"] = round(float(reading.ratio or 0.0), 4)
                    entry["max_slice_sop_instance_uid"] = sops[index]
        discs_truth.append(entry)

    truth: dict[str, object] = {
        "format_version": FORMAT_VERSION,
        "kind": "lumbar",
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "study_instance_uid": study.study_instance_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "series": series_truth,
        "research_use": "synthetic phantom; not patient data",
        "discs": discs_truth,
        "vendor": scene.vendor,
        "voxel_mm": float(voxel_mm),
        "vertebra_centres_lps": {
            n: [round(float(c), 3) for c in v.frame.origin] for n, v in spine.vertebrae.items()
        },
    }
    truth_path = out / "ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.debug("wrote lumbar phantom seed %d to %s", seed, out)
    return out

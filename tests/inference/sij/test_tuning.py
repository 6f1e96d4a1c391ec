"""Post-processing choices fitted on training studies: FM probability scale and quadrant area."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from inference.labels import SijLabel
from inference.sij.inferer import SijInferer
from inference.sij.pipeline import SijPipeline, analyse
from inference.sij.training import tune_and_predict
from tests.inference.sij.test_pipeline import threshold_stub, volumes


def test_tuning_keeps_the_area_that_reproduces_the_reference_tables() -> None:
    case, t1, stir = volumes(seed=7)
    reference = analyse(case.t1_labels, case.stir_labels == SijLabel.OEDEMA, case.affine,
                        sop_instance_uids=case.sop_instance_uids)
    assert reference.sparcc_fm_score > 0
    study = SimpleNamespace(t1=t1, stir=stir, t1_labels=case.t1_labels, truth={"fm_table": reference.fm_table_dict()})
    pipe = SijPipeline(threshold_stub(case.t1, case.stir), inferer=SijInferer(patch_size=(16, 96, 96), flip_tta=False),
                       spacing_mm=1.5)
    # 10,000 mm2 per quadrant and slice hides every lesion: worse quadrant accuracy, so 2 mm2 is kept
    scale, dice_by_scale, results = tune_and_predict(pipe, [study], scales=(1.0, 0.5), min_areas_mm2=(10000.0, 2.0),
                                                     progress=False)
    assert pipe.postprocess.min_quadrant_area_mm2 == 2.0 and pipe.postprocess.fm_scale == scale
    assert dice_by_scale[1.0] == 1.0
    assert results[0].fm_table_dict() == reference.fm_table_dict()
    assert np.array_equal(results[0].labels, case.t1_labels)

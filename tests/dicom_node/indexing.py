"""Index a study as the SCP and the assembler would, without the network (for the job and status tests)."""

from __future__ import annotations

import io
from datetime import datetime

import sqlalchemy as sa
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session, sessionmaker

from storage import repo
from storage.models import Study
from storage.store import InstanceStore


def ingest(sessions: sessionmaker[Session], store: InstanceStore, datasets: list[Dataset], *,
           now: datetime, complete: bool = True) -> int:
    """Store and index one study's ``datasets`` as the SCP would; complete it (as the assembler would).

    Returns
    -------
    int
        The study's row id.
    """
    with sessions() as session:
        for ds in datasets:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            stored = store.put(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, buffer.getvalue())
            repo.record_instance(
                session=session, stored=stored, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID,
                sop_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                transfer_syntax_uid=ds.file_meta.TransferSyntaxUID, calling_ae="TEST", peer=None,
                study_attrs={}, series_attrs={"modality": "MR", "series_number": int(ds.SeriesNumber),
                                              "series_description": str(ds.SeriesDescription)},
                now=now,
            )
        study = session.scalars(
            sa.select(Study).where(Study.study_instance_uid == datasets[0].StudyInstanceUID)).one()
        if complete:
            repo.mark_study_complete(session=session, study_id=study.id, forced=False, now=now)
        session.commit()
        return study.id

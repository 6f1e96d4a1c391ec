"""Alembic migrations of the dicom-node schema (applied by :func:`storage.db.upgrade`)."""

"""Persistence for dicom-node.

SQLAlchemy models, repository functions, Alembic migrations and the on-disk
instance store (see docs/storage.md).
"""

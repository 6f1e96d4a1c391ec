"""Persistence for dicom-node: SQLAlchemy models, repository functions, migrations and the on-disk instance store."""

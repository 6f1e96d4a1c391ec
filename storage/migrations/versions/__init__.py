"""Alembic revisions, one module each (a package so that they ship with the wheel)."""

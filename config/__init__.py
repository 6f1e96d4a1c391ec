"""Typed settings for dicom-node (pydantic-settings), loaded from YAML and the environment."""

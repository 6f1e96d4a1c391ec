"""The migrations ship with the package (``serve`` upgrades from an installed wheel)."""

from __future__ import annotations

import configparser
import fnmatch

from setuptools import find_packages

from storage.db import MIGRATIONS_DIR
from tests.conftest import REPO_ROOT


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    return cfg


def test_migration_packages_are_found() -> None:
    include = _setup_cfg()["options.packages.find"]["include"].split()
    packages = find_packages(where=str(REPO_ROOT), include=include)
    assert "storage.migrations" in packages
    assert "storage.migrations.versions" in packages


def test_every_file_of_the_migrations_is_shipped() -> None:
    patterns = [p.strip() for p in _setup_cfg()["options.package_data"]["*"].split(",")]
    for path in MIGRATIONS_DIR.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        shipped = path.suffix == ".py" or any(fnmatch.fnmatch(path.name, p) for p in patterns)
        assert shipped, f"{path.relative_to(REPO_ROOT)} would be missing from the wheel"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()

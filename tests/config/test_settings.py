from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


def test_defaults_match_design(tmp_path: Path) -> None:
    s = load_settings(environ={}, storage_dir=tmp_path)
    assert (s.ae_title, s.host, s.port, s.executor, s.device) == (
        "DICOM_NODE", "0.0.0.0", 11112, "local", "auto")
    assert s.allowed_calling_aets == [] and s.allowed_hosts == []
    assert s.resolved_database_url.startswith("sqlite:///")
    assert s.resolved_database_url.endswith("dicom-node.sqlite3")


def test_yaml_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "ae_title: FROMYAML\nport: 104\nassembly: {settle_seconds: 3, poll_seconds: 2}\n"
        "destinations:\n  - {name: pacs, ae_title: ORTHANC, host: 127.0.0.1, port: 4242}\n"
    )
    env = {
        "DICOM_NODE_PORT": "2000",
        "DICOM_NODE_ASSEMBLY__SETTLE_SECONDS": "7",
        "DICOM_NODE_ALLOWED_CALLING_AETS": '["PACS"]',
    }
    s = load_settings(cfg, environ=env, storage_dir=tmp_path)
    assert s.ae_title == "FROMYAML"
    assert s.port == 2000
    assert s.assembly.settle_seconds == 7 and s.assembly.poll_seconds == 2
    assert s.allowed_calling_aets == ["PACS"]
    assert s.destinations[0].ae_title == "ORTHANC"


def test_config_file_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ae_title: VIAENV\n")
    s = load_settings(environ={"DICOM_NODE_CONFIG": str(cfg)}, storage_dir=tmp_path)
    assert s.ae_title == "VIAENV"


def test_every_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "ae_title: THIS_IS_WAY_TOO_LONG_AE\nport: 70000\nexecutor: threads\n"
        "device: tpu\nnot_a_key: 1\ndestinations:\n  - {name: x, ae_title: 'A\\\\B', port: 0}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={}, storage_dir=tmp_path)
    keys = [line.split(":")[0] for line in info.value.problems]
    assert {"ae_title", "port", "executor", "device", "not_a_key",
            "destinations.0.ae_title"} <= set(keys)
    assert all("\n" not in line for line in info.value.problems)


def test_incomplete_destination_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, storage_dir=tmp_path, destinations=[{"name": "pacs", "ae_title": "PACS"}])
    (line,) = info.value.problems
    assert line.startswith("destinations.0:") and "host, port required" in line
    # a DICOMweb destination needs only its URL
    s = load_settings(environ={}, storage_dir=tmp_path,
                      destinations=[{"name": "web", "stow_url": "http://127.0.0.1:8042/dicom-web"}])
    assert s.destinations[0].host is None


def test_unwritable_storage_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, storage_dir=blocker / "sub")
    assert info.value.problems[0].startswith("storage_dir:")


def test_unreadable_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(cfg, environ={}, storage_dir=tmp_path)


def test_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    s = load_settings(example, environ={}, storage_dir=tmp_path)
    assert s.ae_title



def test_jobs_section_from_yaml_and_environment(tmp_path: Path) -> None:
    s = load_settings(environ={}, storage_dir=tmp_path)
    assert (s.jobs.max_attempts, s.jobs.backoff_initial_seconds, s.jobs.backoff_max_seconds,
            s.jobs.timeout_seconds, s.jobs.priorities) == (3, 5.0, 600.0, 900.0, {})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("jobs: {max_attempts: 5, backoff_initial_seconds: 2, timeout_seconds: 60, priorities: {sij: 2}}\n")
    s = load_settings(cfg, environ={"DICOM_NODE_JOBS__BACKOFF_MAX_SECONDS": "30"}, storage_dir=tmp_path)
    assert (s.jobs.max_attempts, s.jobs.backoff_initial_seconds, s.jobs.backoff_max_seconds,
            s.jobs.timeout_seconds, s.jobs.priorities) == (5, 2.0, 30.0, 60.0, {"sij": 2})


def test_bad_jobs_keys_are_one_line_each(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "jobs:\n  max_attempts: 0\n  backoff_initial_seconds: -1\n  timeout_seconds: soon\n"
        "  retries: 2\n  priorities: {brain: 1, sij: high}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={}, storage_dir=tmp_path)
    keys = sorted(line.split(":")[0] for line in info.value.problems)
    assert keys == ["jobs.backoff_initial_seconds", "jobs.max_attempts", "jobs.priorities.brain",
                    "jobs.priorities.sij", "jobs.retries", "jobs.timeout_seconds"]
    assert all("\n" not in line for line in info.value.problems)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, storage_dir=tmp_path, jobs={"backoff_initial_seconds": 60, "backoff_max_seconds": 10})
    assert info.value.problems == ["jobs: backoff_max_seconds (10) is less than backoff_initial_seconds (60)"]


def test_example_config_spells_out_the_jobs_defaults(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    assert load_settings(example, environ={}, storage_dir=tmp_path).jobs == load_settings(
        environ={}, storage_dir=tmp_path).jobs
    assert "\njobs:\n" in example.read_text()

"""``dicom-node echo DEST``: destination names, AET@host:port, against a live node."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.settings import load_settings
from dicom_node.cli import main
from dicom_node.commands.echo import resolve_destination
from tests.conftest import free_port
from tests.dicom_node.serve_harness import ServeProcess



def test_resolve_destination(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, storage_dir=tmp_path,
        destinations=[{"name": "pacs", "ae_title": "PACS", "host": "10.0.0.5", "port": 104}],
    )
    assert resolve_destination("pacs", settings) == ("PACS", "10.0.0.5", 104)
    assert resolve_destination("ORTHANC@127.0.0.1:4242", settings) == ("ORTHANC", "127.0.0.1", 4242)
    for bad in ("nope", "A@host", "A@host:99999", "WAY_TOO_LONG_AE_TITLE@h:1", "@h:1"):
        with pytest.raises(ValueError):
            resolve_destination(bad, settings)


def _echo(config: Path, dest: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in this process (the import of every command is paid once)."""
    code = main(["--config", str(config), "echo", dest, "--timeout", "10"])
    return code, capsys.readouterr().out


def test_echo_command(
    shared_node: ServeProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "client.yaml"
    config.write_text(yaml.safe_dump({
        "ae_title": "CLIENT", "storage_dir": str(tmp_path / "client"),
        "destinations": [
            {"name": "node", "ae_title": "DICOM_NODE", "host": "127.0.0.1", "port": shared_node.port},
            {"name": "wrong-ae", "ae_title": "OTHER", "host": "127.0.0.1", "port": shared_node.port},
        ],
    }))
    code, out = _echo(config, "node", capsys)
    assert code == 0 and "status 0x0000" in out, out
    assert _echo(config, f"DICOM_NODE@127.0.0.1:{shared_node.port}", capsys)[0] == 0
    code, out = _echo(config, "wrong-ae", capsys)
    assert code == 1 and "no association" in out
    assert _echo(config, f"DICOM_NODE@127.0.0.1:{free_port()}", capsys)[0] == 1
    assert _echo(config, "not-configured", capsys)[0] == 2

"""The CLI dispatcher: every command is listed, and light commands stay light."""

from __future__ import annotations

import subprocess
import sys

from dicom_node.cli import build_parser



def test_help_lists_the_commands_that_exist() -> None:
    help_text = build_parser().format_help()
    for name in ("serve", "status", "echo", "synth", "train", "evaluate"):
        assert name in help_text


def test_status_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from dicom_node.cli import main\n"
        "try:\n"
        "    main(['status', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, "building the 'status' parser imported torch"


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dicom_node", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr

"""Heavy imports only where they are used: `hactl status` must not pay for matplotlib."""

from __future__ import annotations

import subprocess
import sys

# Every verb's --help, in one fresh interpreter (the test process may already hold matplotlib).
PROBE = """
import sys
from typer.testing import CliRunner
from hactl.cli import app
for verb in ("status", "scale", "rollout", "verify", "autoscale", "chaos"):
    result = CliRunner().invoke(app, [verb, "--help"])
    assert result.exit_code == 0, result.output
heavy = [m for m in ("matplotlib", "numpy") if m in sys.modules]
print(",".join(heavy))
"""


def test_verbs_that_do_not_plot_do_not_import_matplotlib() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "", f"`hactl <verb> --help` imported {probe.stdout.strip()}"

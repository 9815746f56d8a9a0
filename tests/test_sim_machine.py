"""The simulated ESP32 machine and plant behave like the chip where the firmware depends on it.
The checks (tests/sim) run on the MicroPython unix port, where the virtual device runs."""

import os
import subprocess
from pathlib import Path

from host_tools import paths

SIM_TESTS = Path(__file__).resolve().parent / "sim"


def test_simulated_machine_on_micropython():
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(
        [str(paths.SIM_MPY), ".frozen", str(paths.FIRMWARE_LIB), str(SIM_TESTS)]))
    proc = subprocess.run([paths.micropython_executable(),
                           str(paths.REPO / "tests" / "firmware" / "mpy_runner.py"),
                           "test_sim_machine"],
                          env=env, cwd=paths.REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = (SIM_TESTS / "test_sim_machine.py").read_text().count("\ndef test_")
    assert proc.stdout.strip().splitlines()[-1] == "%d passed, 0 failed" % count

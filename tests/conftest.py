import ast
import functools
import os
import sys
import tempfile
from pathlib import Path

import pytest
import vdevice_rig
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
# The firmware's modules and the dual-interpreter tests import each other by bare name, as on the
# device (where /lib is on sys.path); on CPython with the stand-ins for MicroPython's built-in
# modules they import (host_tools/cpython_stubs: micropython.const).
for path in (REPO / "host_tools" / "cpython_stubs", REPO / "firmware" / "lib",
             REPO / "tests" / "firmware"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# Bytecode cached whatever the environment says (PYTHONDONTWRITEBYTECODE): the firmware drops
# the modules it needs only now and then (heap.forget) and imports them again, and without a cache
# CPython compiles them from source each time (12 of the 15 s of the settings power-cut test). The
# cache goes to build/, not beside the sources.
sys.dont_write_bytecode = False
sys.pycache_prefix = str(REPO / "build" / "pycache")

# The dual-interpreter tests' scratch files (support.scratch): one folder per pytest process, which
# the MicroPython runs it starts inherit, so that parallel workers never share a file.
os.environ["LASER_TEST_TMP"] = tempfile.mkdtemp(prefix="laser-test-")

# tests/sim runs only on MicroPython (the simulated machine lives there): see test_sim_machine.py.
collect_ignore = ["sim"]

# How hard the property tests try: HYPOTHESIS_PROFILE=default (make test, CI) or verify (make
# verify: ten times the examples). Every hypothesis test takes its example count as a multiple
# of settings.default.max_examples, the profile's, so that one switch scales them all. Virtual
# time only, so no deadline; a slow example is a long scenario, not a hang.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("verify", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# pytest-xdist (make test: `-n auto --dist loadscope`) sends work to the cores a unit at a time.
# xdist's own unit is a whole module, which left one core running the long scenario modules alone
# while the other had finished. Here each test is its own unit, except in a module with a
# module-scoped fixture (the exhaustive search, the bench): its tests stay together, so that the
# fixture runs once. (`--dist loadgroup` would say this with marks, but does not group anything
# with pytest 9.2 and pytest-xdist 3.8: checked, tests of one group ran on both workers.)
@pytest.hookimpl(optionalhook=True)  # a plain run without xdist (-p no:xdist) knows no such hook
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return module if _shares_a_module_fixture(module) else nodeid

    return Scheduling(config, log)


@functools.cache
def _shares_a_module_fixture(module):
    """Whether the test module defines a fixture with scope "module" (read from its syntax tree,
    so that a comment or a string saying so does not count)."""
    path = REPO / module
    if path.suffix != ".py":
        return False
    return any(isinstance(node, ast.keyword) and node.arg == "scope"
               and isinstance(node.value, ast.Constant) and node.value.value == "module"
               for node in ast.walk(ast.parse(path.read_text())))


# The virtual device started as a serial port (tests/vdevice_rig.py), for the tests that drive it
# from outside: mpremote, deploy, calibrate, the console.
@pytest.fixture
def start_device(tmp_path):
    """Start devices; every one is stopped when the test ends, however it ends."""
    started = []

    def start(root=None, maintenance=False, chip=False):
        started.append(vdevice_rig.Device(tmp_path, root, maintenance, chip))
        started[-1].wait_for_port()
        return started[-1]

    yield start
    for dev in started:
        dev.stop()


@pytest.fixture
def device(start_device):
    """A device running its firmware: the serial port carries the JSON protocol only."""
    return start_device()


@pytest.fixture
def maintenance_device(start_device):
    """`laserctl vdevice --maintenance`: no control loop, the REPL for mpremote."""
    return start_device(maintenance=True)

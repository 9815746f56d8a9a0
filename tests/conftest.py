import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The firmware's modules and the dual-interpreter tests import each other by bare name, as on the
# device (where /lib is on sys.path).
for path in (REPO / "firmware" / "lib", REPO / "tests" / "firmware"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# tests/sim runs only on MicroPython (the simulated machine lives there): see test_sim_machine.py.
collect_ignore = ["sim"]

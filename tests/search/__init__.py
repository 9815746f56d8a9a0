"""The safety searches' shared code: the safety oracle (oracle.py) that the exhaustive search, the
hypothesis state machine (tests/test_state_machine.py) and the rhythm search
(tests/test_rhythms.py) all check every tick with, the boards they run on, and the exhaustive
search itself. docs/search.md has the design.

    python tests/search [--depth 8] [--monitor-depth 3] [--board quick|sim] [--progress]

Not a test module: pytest collects nothing here."""

import sys
from pathlib import Path

# As a script (`python tests/search`): the path set-up tests/conftest.py does for pytest. The
# firmware's modules and the dual-interpreter test helpers import each other by bare name.
_TESTS = Path(__file__).resolve().parent.parent
# The CPython stand-in for `micropython.const` too (host_tools/cpython_stubs).
for _path in (_TESTS.parent / "host_tools" / "cpython_stubs", _TESTS.parent / "firmware" / "lib",
              _TESTS / "firmware"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

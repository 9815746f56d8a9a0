"""`python tests/search ...`: the exhaustive search's command line (cli.py)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a folder: its parent, not the folder, goes on the path
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from search.cli import main  # noqa: E402

sys.exit(main())

"""docs/states.md's transition table and indicator rules, read: the rows (tests/
test_transition_table.py keeps them and the tests in step) and the state changes they allow
(the safety oracle's)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
DOC = REPO / "docs" / "states.md"
STATES = ("BOOT", "STANDBY", "READY", "EMITTING", "PAUSED", "COMPLETE", "FAULT")

_ROW = re.compile(r"^\|\s*([TA]\d\d)\s*\|")


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def rows():
    """{id: cells} for every T and A row of docs/states.md, in order (duplicates fail here)."""
    result = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            assert match.group(1) not in result, "duplicate row " + match.group(1)
            result[match.group(1)] = cells(line)
    return result


def _states(cell):
    text = cell.strip()
    if text == "any but FAULT":  # BOOT runs no tick: nothing happens in it but the self-test
        return [s for s in STATES if s not in ("BOOT", "FAULT")]
    names = [name.strip() for name in text.split(",")]
    for name in names:
        assert name in STATES, "not a state: %r" % cell
    return names


def transitions():
    """{(from, to): [row ids]} of the transition table, guard rows (from == to) included."""
    result = {}
    for row_id, row in rows().items():
        if row_id.startswith("T"):
            assert len(row) == 7, "%s: expected 7 cells, got %d" % (row_id, len(row))
            (to,) = _states(row[4])
            for frm in _states(row[1]):
                result.setdefault((frm, to), []).append(row_id)
    return result


def state_changes():
    """The (from, to) pairs of the table's rows that change the state."""
    return {pair for pair in transitions() if pair[0] != pair[1]}

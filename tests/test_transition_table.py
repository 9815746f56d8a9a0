"""docs/states.md and its tests stay in step: every row of the transition table (T01...) and of the
indicator rules (A01...) names tests that exist, every test_Tnn_/test_Ann_ test has its row, and
every fault code and session end reason the firmware defines is documented (and, for fault codes,
has a row into FAULT). The safety oracle (tests/search/oracle.py) reads the allowed state changes
from the same table (tests/search/states_doc.py)."""

import ast
import re

from search import states_doc
from search.states_doc import DOC, REPO, rows, transitions

TESTS = REPO / "tests" / "firmware" / "test_transitions.py"

_TEST = re.compile(r"`(?:([\w./-]+\.py)::)?(test_\w+)`")
_CONSTANT = re.compile(r'^([A-Z][A-Z_]*) = "([A-Z][A-Z_]*)"$', re.M)


def _section(title):
    text = DOC.read_text()
    start = text.index("\n## " + title + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def _table_first_column(section):
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names.append(states_doc.cells(line)[0].strip("`"))
    return names


def _defined_tests(path):
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_row_ids_are_consecutive_and_rows_are_well_formed():
    table = rows()
    for prefix in ("T", "A"):
        ids = [i for i in table if i.startswith(prefix)]
        assert ids == ["%s%02d" % (prefix, n) for n in range(1, len(ids) + 1)], ids
    assert len([i for i in table if i.startswith("T")]) >= 40
    transitions()  # every from/to cell names states


def test_every_row_names_tests_that_exist():
    here = _defined_tests(TESTS)
    for row_id, cells in rows().items():
        named = _TEST.findall(cells[-1])
        assert named, "%s names no test" % row_id
        own = [name for path, name in named if not path and name.startswith("test_%s_" % row_id)]
        assert own or any(path for path, _ in named), "%s: no test_%s_... named" % (row_id, row_id)
        for path, name in named:
            if path:
                assert name in _defined_tests(REPO / path), "%s: %s::%s" % (row_id, path, name)
            else:
                assert name in here, "%s: %s is not in %s" % (row_id, name, TESTS.name)
                match = re.match(r"test_([TA]\d\d)_", name)
                assert match is None or match.group(1) == row_id, "%s names %s" % (row_id, name)


def test_every_numbered_test_has_its_row():
    table = rows()
    for name in sorted(_defined_tests(TESTS)):
        match = re.match(r"test_([TA]\d\d)_", name)
        assert match, "%s: tests in test_transitions.py start with a row id" % name
        row_id = match.group(1)
        assert row_id in table, "%s has no row %s in docs/states.md" % (name, row_id)
        assert "`%s`" % name in table[row_id][-1], "row %s does not name %s" % (row_id, name)


def test_every_fault_code_and_session_end_reason_is_documented():
    constants = set()
    for path in sorted((REPO / "firmware" / "lib").glob("*.py")):
        constants.update(value for _, value in _CONSTANT.findall(path.read_text()))
    faults = _table_first_column(_section("Fault codes"))
    ends = _table_first_column(_section("Session end reasons"))
    assert len(faults) == len(set(faults)) and len(ends) == len(set(ends))
    missing = constants - set(faults) - set(ends)
    assert not missing, "firmware constants missing in docs/states.md: %s" % sorted(missing)
    unknown = (set(faults) | set(ends)) - constants
    assert not unknown, "documented but not in the firmware: %s" % sorted(unknown)
    table = rows()
    for code in faults:
        into_fault = [i for i, c in table.items()
                      if i.startswith("T") and c[4] == "FAULT" and "`%s`" % code in c[2]]
        assert len(into_fault) == 1, "%s: rows into FAULT: %s" % (code, into_fault)
    for reason in ends:
        assert any("`%s`" % reason in c[5] for i, c in table.items() if i.startswith("T")), reason

"""docs/hazards.md stays honest: every row names tests and scenarios that exist and that `make
test` runs, and every hazard the issue lists has its row."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "hazards.md"
_ROW = re.compile(r"^\|\s*(H\d\d)\s*\|")
_REF = re.compile(r"`(tests/[\w./-]+?)(?:::(\w+))?`")
# The hazards issue 6 requires, as words their row's hazard cell contains.
REQUIRED = ("emission at boot", "interlock open", "key removal", "footswitch stuck",
            "over-temperature", "thermistor open", "thermistor stuck", "dead fan",
            "power too high", "power too low", "dose overrun", "corrupted configuration",
            "tampered firmware", "loop hang", "exception", "memory exhaustion", "wrap",
            "power cut",
            # issue 14's: holes an attacker found with operator rhythms, wiring and bytes
            "hardware-gated pulses", "broken wire", "neither counted nor timed",
            "operator's end of a session", "serial port reaches Python", "host tool")
# The monitors the rule (no operator action resets a monitor's evidence) was reviewed against.
MONITORS = ("stuck reading", "rate of rise", "runaway", "energy budget", "footswitch disagreement",
            "power monitor windows", "enable line", "overruns", "watchdog")
# Scenario folders and the test that runs every file in them.
SCENARIO_RUNNERS = {"tests/scenarios": "tests/test_scenarios.py",
                    "tests/scenarios/faults": "tests/test_faults.py",
                    "tests/scenarios/presets": "tests/test_presets.py"}


def rows():
    result = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 6, "%s: expected 6 cells, got %d" % (match.group(1), len(cells))
            assert match.group(1) not in result, "duplicate row " + match.group(1)
            result[match.group(1)] = cells
    return result


def _top_level_names(path):
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_rows_are_numbered_and_complete():
    table = rows()
    assert list(table) == ["H%02d" % n for n in range(1, len(table) + 1)]
    for row_id, cells in table.items():
        assert all(cells[1:5]), "%s has an empty cell" % row_id
    hazards = " ".join(cells[1] for cells in table.values())
    missing = [words for words in REQUIRED if words not in hazards]
    assert not missing, "hazards without a row: %s" % missing


def test_every_named_test_and_scenario_exists_and_runs():
    for row_id, cells in rows().items():
        refs = _REF.findall(cells[5])
        assert refs, "%s names no test" % row_id
        for path, name in refs:
            file = REPO / path
            assert file.is_file(), "%s: %s does not exist" % (row_id, path)
            if name:
                assert name in _top_level_names(file), "%s: %s::%s" % (row_id, path, name)
            else:
                assert path.endswith(".json"), "%s: name the test in %s" % (row_id, path)
                runner = SCENARIO_RUNNERS.get(str(Path(path).parent))
                assert runner, "%s: %s is in no folder a test runs" % (row_id, path)


def test_the_checker_fails_on_a_test_that_does_not_exist():
    assert "test_no_such_thing" not in _top_level_names(REPO / "tests" / "test_hw.py")
    assert _REF.findall("`tests/test_hw.py::test_x`, `tests/scenarios/a.json`") == [
        ("tests/test_hw.py", "test_x"), ("tests/scenarios/a.json", "")]


def test_the_rule_and_each_monitors_review_are_written_down():
    text = DOC.read_text()
    assert "no operator action resets a monitor's evidence" in text
    reviewed = [line.split("|")[1].strip() for line in text.splitlines()
                if line.startswith("| ") and not _ROW.match(line)]
    missing = [m for m in MONITORS if not any(r.startswith(m) for r in reviewed)]
    assert not missing, "monitors without a review row: %s" % missing

"""Every single fault of docs/hazards.md injected into the virtual device during emission
(host_tools/faults.py): each scenario's bounds hold (emission off in time, the right
fault code), and every fault the simulator can inject has a scenario."""

import json

import pytest

from host_tools import faults, scenario


@pytest.fixture(scope="module")
def rows():
    result = faults.run_all()
    print("\n" + faults.format_table(result))
    return result


def test_every_injected_fault_ends_in_the_safe_state_within_its_bound(rows):
    assert len(rows) == len(faults.scenario_files())
    for row in rows:
        assert row["passed"], (row["scenario"], row["failures"])
        assert row["light_off_ms"] is not None, row  # the light always went off


def test_every_fault_scenario_names_its_bound_and_its_outcome():
    for path in sorted((faults.SCENARIOS / "faults").glob("*.json")):
        expect = json.loads(path.read_text())["expect"]
        assert any(key.startswith(("fault_codes", "emission_intervals", "refusals", "errors",
                                   "session_ends")) for key in expect), path.name
        assert any(isinstance(v, dict) and "max" in v for v in expect.values()) or \
            "emission_intervals.1" in expect, path.name


def test_every_fault_the_simulator_injects_has_a_scenario(rows):
    injected = {row["fault"] for row in rows}
    assert set(scenario.FAULTS) <= injected, set(scenario.FAULTS) - injected

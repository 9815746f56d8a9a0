"""Every single fault of docs/hazards.md has a scenario that injects it into the virtual device
during emission (host_tools/faults.py, `make bench`'s table). Each scenario runs once, in
tests/test_scenarios.py, which holds its bounds (emission off in time, the right fault code)."""

import json

from host_tools import faults, scenario


def test_every_fault_scenario_names_its_bound_and_its_outcome():
    for path in sorted((faults.SCENARIOS / "faults").glob("*.json")):
        expect = json.loads(path.read_text())["expect"]
        assert any(key.startswith(("fault_codes", "emission_intervals", "refusals", "errors",
                                   "session_ends")) for key in expect), path.name
        assert any(isinstance(v, dict) and "max" in v for v in expect.values()) or \
            "emission_intervals.1" in expect, path.name


def test_every_fault_the_simulator_injects_has_a_scenario():
    injected = set()
    for path in faults.scenario_files():
        data, _ = scenario.load(path)
        injected |= {e["fault"] for e in data["events"] if "fault" in e}
    assert set(scenario.FAULTS) <= injected, set(scenario.FAULTS) - injected


def test_every_fault_scenario_is_a_shipped_scenario_run_by_the_tests():
    shipped = {p.resolve() for p in (faults.SCENARIOS).rglob("*.json")}
    assert {p.resolve() for p in faults.scenario_files()} <= shipped

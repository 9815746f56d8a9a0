"""The simulated ESP32 machine and plant behave like the chip where the firmware depends on it.
The checks (tests/sim) run on the two MicroPython interpreters the virtual device runs on."""

import json
from pathlib import Path

import pytest
from micropython_runs import INTERPRETERS, assert_all_pass

from host_tools import scenario, vdevice

SIM_TESTS = Path(__file__).resolve().parent / "sim"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_simulated_machine_on_micropython(interpreter):
    # On both interpreters the virtual device runs on: the chip interpreter has the simulated
    # machine frozen in (32-bit: its clocks, counters and trace must stay within small ints).
    # The heap is the virtual device's (vdevice.DEFAULT_HEAP): a test that simulates hours
    # grows its trace to 128 KB lists, which the interpreters' 1 MB default could not always
    # place whole (seen on the chip interpreter, depending on the checkout's path's length).
    assert_all_pass(interpreter, SIM_TESTS, "test_sim_machine", heap=vdevice.DEFAULT_HEAP)


def test_the_watchdog_resets_at_its_deadline_when_the_world_goes_on_during_a_hang():
    """Issue 14, point 10: inputs, a serial line and a fault due during a hang once kept the light
    on until the last of them; the watchdog's deadline wins, and what is due after it lands after
    the reset, at its own time."""
    path = SIM_TESTS.parent / "scenarios" / "faults" / "loop_hang_during_events.json"
    report = scenario.run(*scenario.load(path))
    assert report["expect"]["failures"] == []
    hang_s = report["faults_injected"][0]["at_s"]
    [reset] = report["resets"]
    # Fed at the last tick before the hang (10 ms period), bitten 500 ms (+1 us) after.
    assert reset["cause"] == "watchdog" and hang_s < reset["at_s"] <= hang_s + 0.010 + 0.500001
    optical = report["trace"]["optical_w"]
    assert optical[-1] == (reset["at_s"], 0.0) and optical[-2][1] > 0
    written = json.loads(path.read_text())["events"]
    assert [(t, name) for t, name, _ in report["trace"]["inputs"]] == \
        [(e["at_s"], e.get("input") or ("fault" if "fault" in e else "serial")) for e in written]
    assert report["serial"][0]["reply"]["state"] == "FAULT"  # answered after the reboot

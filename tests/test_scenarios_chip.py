"""Shipped scenarios on the chip-shaped interpreter (docs/chip.md): the frozen firmware as the
ESP32 image holds it, 32-bit, single floats. Apart from tests/test_scenarios.py so that pytest-xdist
can run the two modules on both cores (it keeps a module's tests on one worker)."""

from pathlib import Path

import pytest

from host_tools import scenario

# On the chip interpreter (32-bit, single floats, the firmware frozen as in the ESP32 image; every
# shipped scenario: `laserctl scenario --chip`), a set that covers a treatment with pauses,
# pulses from the hardware gate, faults, the watchdog and a power cut, the serial protocol, the
# tick counter's wrap, a tampered file and an exhausted heap.
CHIP_SCENARIOS = ("pause_resume", "pulsed_5khz", "thermistor_open_during_emission", "estop",
                  "serial_session", "faults/loop_hang", "faults/power_cut", "faults/tick_wrap",
                  "faults/firmware_tampered", "faults/memory_exhaustion")


@pytest.mark.parametrize("name", CHIP_SCENARIOS)
def test_shipped_scenario_meets_its_expectations_on_the_chip(name):
    data, board = scenario.load(Path(__file__).parent / "scenarios" / (name + ".json"))
    report = scenario.run(data, board, chip=True)
    assert report["expect"]["failures"] == []
    if not name.startswith("faults/"):  # an injected fault may make the firmware report one
        assert report["errors"] == []
    if report["final_state"] == "COMPLETE":
        # The firmware's count and the plant's integral describe the same light: the plant's
        # sum holds its precision in single floats too.
        assert abs(report["delivered_j"] - report["emitted_j"]) < 0.01, report["emitted_j"]

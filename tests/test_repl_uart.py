"""The virtual device's REPL UART costs what the ESP32's does (a 128-byte FIFO at the board's baud
rate, a write that does not fit waits a FreeRTOS tick at a time), and the firmware's output never
waits for it. The model's checks (tests/sim/test_repl_uart.py) run on MicroPython: the unix port
and the chip interpreter. The scenario with a host asking for status every tick is
tests/scenarios/status_every_tick.json (tests/test_scenarios.py runs it with its expectations)."""

from pathlib import Path

import pytest
from micropython_runs import INTERPRETERS, assert_all_pass

from host_tools import scenario

SIM_TESTS = Path(__file__).resolve().parent / "sim"


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_the_uart_model_on_micropython(interpreter):
    assert_all_pass(interpreter, SIM_TESTS, "test_repl_uart", heap="2M")


def test_status_every_tick_at_115200_baud_neither_overruns_nor_waits():
    path = Path(__file__).resolve().parent / "scenarios" / "status_every_tick.json"
    report = scenario.run(*scenario.load(path))
    assert report["expect"]["failures"] == []
    port = report["serial_port"]
    assert port["waits"] == 0 and port["waited_ms"] == 0 and report["overruns"] == 0
    # The line was busy: it carried about what 115200 baud carries while the host asked.
    asked_s = 8.0 - 4.5
    assert port["bytes"] >= 0.9 * 11520 * asked_s, port
    answered = [x for x in report["serial"] if x["reply"] is not None]
    assert 0.9 * 11520 * asked_s / 750 <= len(answered) < len(report["serial"])
    # Answered in the order asked, each request whole; the rest wait in the port.
    assert all(x["reply"]["ok"] and x["reply"]["cmd"] == "status" for x in answered)
    assert report["serial"][len(answered)]["reply"] is None

# The simulated REPL UART (host_tools/vdevice/mpy/repl_uart.py) costs what the ESP32's costs, and
# the firmware's serial output does not wait for it. MicroPython only (the unix port and the chip
# interpreter); run by tests/test_repl_uart.py through tests/firmware/mpy_runner.py.
import json

import repl_uart
import sim_machine as machine
import simworld
from simworld import HardReset

_HERE = __file__.rsplit("/", 1)[0]
_REPO = _HERE + "/../.."


def _board():
    with open(_REPO + "/boards/sim.json") as f:
        return json.load(f)


def _bytes(chunk):
    return chunk.encode() if isinstance(chunk, str) else bytes(chunk)  # a long line: its str


def _world(**config):
    board = _board()
    config.setdefault("table_path", _REPO + "/host_tools/vdevice/data/" +
                      board["plant"]["thermistor_table"])
    w = simworld.World(config, board)
    simworld.WORLD = w
    w.port = []  # what the host receives
    w.uart._sink = lambda buf, off, n: w.port.append(_bytes(buf[off:off + n]))
    return w


def test_a_450_byte_line_holds_its_writer_30_ms_at_115200_baud():
    # The old firmware's way, a whole status line written at once: three 10 ms ticks of the loop
    # gone. 128 bytes fit the FIFO; each FreeRTOS tick (10 ms) the line has sent 115 more.
    w = _world()
    line = b"x" * 449 + b"\n"
    assert w.uart.write(line, 0, 450) == 450
    assert w.now_us == 30000
    assert b"".join(w.port) == line
    assert w.uart.level() == 13 + 92  # the last 92 bytes went in at 30 ms, beside 13 not yet out
    stats = w.uart.stats()
    assert stats["waits"] == 1 and stats["waited_us"] == 30000 and stats["bytes"] == 450


def test_a_write_waits_to_a_freertos_tick_not_just_until_it_fits():
    w = _world()
    w.sleep_us(3000)  # 3 ms into a FreeRTOS tick
    assert w.uart.write(b"y" * 128, 0, 128) == 128 and w.now_us == 3000  # fits: no time
    w.uart.write(b"z", 0, 1)  # one more: room after 87 us, but the writer sleeps a tick
    assert w.now_us == 10000


def test_the_line_empties_the_fifo_at_the_baud_rate():
    w = _world()
    w.uart.write(b"a" * 128, 0, 128)
    w.sleep_us(5000)  # 57.6 bytes' time at 11,520 bytes/s
    assert w.uart.level() == 128 - 57
    w.sleep_us(6112)  # 11.112 ms in all: every byte's ten bits are out
    assert w.uart.level() == 0


def test_the_world_goes_on_during_a_wait_and_the_watchdog_bites_a_long_write():
    w = _world(events=[{"at_s": 0.004, "input": "key", "value": True}])
    machine.WDT(timeout=500)
    try:
        w.uart.write(b"b" * 10000, 0, 10000)  # 0.87 s of line at 115200 baud
    except HardReset as e:
        assert str(e) == "watchdog"
    else:
        raise AssertionError("no watchdog reset")
    assert w.trace["inputs"][:3] == [0, 4000, "key"]  # the key turned while the writer waited
    assert w.now_us == 500001  # fed at 0, bitten 500 ms (+1 us) later


def test_a_scenario_that_ends_during_a_wait_gets_the_whole_line():
    w = _world(until_s=0.015)
    w.uart.write(b"c" * 449 + b"\n", 0, 450)  # would wait to 30 ms: the rest goes at the end
    assert w.now_us == 10000 and len(b"".join(w.port)) == 450


def test_what_a_reset_unwinds_costs_nothing():
    # The simulation runs the firmware's finally blocks through a power cut; the chip does not.
    w = _world()
    w.sleep_us(1000)
    w.reset_pins("power cut")
    w.uart.write(b"d" * 450, 0, 450)
    assert w.now_us == 1000 and w.uart.stats()["waits"] == 0


def test_sys_stdout_is_the_uart_for_what_is_imported_after_install():
    w = _world()
    repl_uart.install()
    import sys

    assert sys.stdout.buffer.write(b"0123456789", 2, 3) == 3
    assert sys.stdout.buffer.write(b"abc") == 3 and sys.stdout.buffer.write(b"abcd", 2) == 2
    assert b"".join(w.port) == b"234" + b"abc" + b"ab"
    assert sys.stdin is sys.real.stdin and sys.implementation.name == "micropython"


def _run_app(until_s, whole_lines):
    """The firmware's App and Hardware on the sim board, its loop run to `until_s`; with
    `whole_lines`, every line written whole at once (the firmware before the outbox: print)."""
    w = _world(until_s=until_s)
    simworld.install()  # the firmware's machine and time: the simulated ones
    repl_uart.install()
    import sys

    for name in ("hw", "link", "app", "recorder", "commands", "halt"):
        sys.modules.pop(name, None)  # imported afresh: their `sys` is the UART's
    import time

    import app as app_module
    import board as board_file
    import hw

    board = board_file.load(_REPO + "/boards/sim.json")
    app = app_module.App(hw.Hardware(board), board, None, time.ticks_ms())
    app.self_test(time.ticks_ms())
    if whole_lines:
        drain = app.outbox.drain
        app.outbox.drain = lambda wait=False: drain(True)
    try:  # noqa: SIM105 - MicroPython has no contextlib
        app.run()
    except simworld.SimEnd:
        pass
    lines = b"".join(w.port).split(b"\n")
    return app, w, [json.loads(line) for line in lines if line]


def test_whole_lines_written_at_once_overrun_the_loop_and_the_outbox_does_not():
    app, w, lines = _run_app(2.0, True)
    statuses = [line for line in lines if line.get("ev") == "status"]
    # A status line (~330 bytes) every 250 ms: each holds the loop 20 ms or more, an overrun.
    assert app.overruns == len(statuses) == 8, (app.overruns, len(statuses))
    assert w.uart.waits >= 8 and w.uart.longest_wait_us >= 20000
    app, w, lines = _run_app(2.0, False)
    assert app.overruns == 0 and w.uart.waits == 0, (app.overruns, w.uart.stats())
    statuses = [line for line in lines if line.get("ev") == "status"]
    assert len(statuses) == 8 and lines[-1]["ev"] == "halt"  # 0, 0.25 .. 1.75 s, then the end
    assert app.outbox.dropped == 0

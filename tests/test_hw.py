"""The hardware module against a fake `machine` that records every call in order: outputs are
created off (enable before PWM, PWM with an explicit duty of 0), the gate is closed before the
duty changes, and inputs are decoded with each board's electrical sense."""

import calendar
import contextlib
import fractions
import importlib
import io
import json
import os
import select
import sys
import time
import types

import pytest
import ticks  # firmware/lib: the chip's tick arithmetic, for CPython's time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import load_board  # tests/firmware is on sys.path (conftest)


class FakeMachine:
    def __init__(self):
        self.calls = []
        self.levels = {}
        self.uv = 1650000
        self.wires = {}  # input pin -> the output pin it reads back
        self.driven = {}  # output pin -> the level last written
        self.cause = 1  # machine.reset_cause()
        fake = self

        class Pin:
            IN, OUT, PULL_UP, PULL_DOWN = 1, 3, 2, 1

            def __init__(self, pin_id, mode=-1, pull=-1, *, value=None):
                self.id = pin_id
                fake.calls.append(("Pin", pin_id, mode, pull, value))

            def init(self, mode=-1, pull=-1, *, value=None):
                fake.calls.append(("init", self.id, mode, value))

            def value(self, *args):
                if args:
                    fake.calls.append(("value", self.id, args[0]))
                    fake.driven[self.id] = args[0]
                    return None
                if self.id in fake.wires:
                    return fake.driven.get(fake.wires[self.id], 0)
                return fake.levels.get(self.id, 1)

        class PWM:
            def __init__(self, pin, *, freq=None, duty_u16=None):
                self.id = pin.id
                fake.calls.append(("PWM", pin.id, freq, duty_u16))

            def duty_u16(self, duty):
                fake.calls.append(("duty_u16", duty))

            def deinit(self):
                fake.calls.append(("deinit", self.id))

        class ADC:
            ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

            def __init__(self, pin, *, atten=None):
                fake.calls.append(("ADC", pin.id, atten))

            def read_uv(self):
                return fake.uv

        class RTC:  # the ESP32's: a datetime tuple with the weekday fourth, and its memory
            def datetime(self, value=None):
                if value is None:
                    return fake.rtc_datetime
                fake.rtc_datetime = tuple(value)

            def memory(self, data=None):
                if data is None:
                    return fake.rtc_memory
                fake.rtc_memory = bytes(data)

        class WDT:
            def __init__(self, id=0, timeout=5000):
                fake.calls.append(("WDT", timeout))

            def feed(self):
                fake.calls.append(("feed",))

        class Counter:
            RISING = 1

            def __init__(self, unit, src, *, edge=None):
                fake.calls.append(("Counter", unit, src.id, edge))

            def value(self, *args):
                fake.calls.append(("Counter.value",) + args)
                return fake.edges

        class I2C:  # the bus, with a DS3231's 19 registers at 0x68 while it is fitted
            def __init__(self, bus_id, *, scl, sda, freq=400000):
                fake.calls.append(("I2C", bus_id, scl.id, sda.id, freq))

            def readfrom_mem(self, addr, memaddr, nbytes):
                if not fake.ds3231_fitted or addr != 0x68:
                    raise OSError(19)
                return bytes(fake.ds3231[memaddr:memaddr + nbytes])

            def writeto_mem(self, addr, memaddr, buf):
                if not fake.ds3231_fitted or addr != 0x68:
                    raise OSError(19)
                fake.ds3231[memaddr:memaddr + len(buf)] = buf

            def writeto(self, addr, buf):  # the display at 0x3C, while it is fitted
                if not fake.display_fitted or addr != 0x3C:
                    raise OSError(19)
                fake.calls.append(("writeto", addr, bytes(buf)))

        class Encoder:  # the pulse counter's quadrature decoder
            def __init__(self, unit, phase_a, phase_b, *, filter_ns=0, phases=1):
                fake.calls.append(("Encoder", unit, phase_a.id, phase_b.id, filter_ns, phases))

            def value(self, *args):
                fake.calls.append(("Encoder.value",) + args)
                return fake.encoder_steps

        class SSD1306_I2C:  # micropython-lib's driver: its first command switches the display off
            def __init__(self, width, height, i2c, addr=0x3C):
                fake.calls.append(("SSD1306_I2C", width, height, addr))
                i2c.writeto(addr, bytearray([0x80, 0xAE]))

        self.edges = 0  # what the pulse counter on the enable sense pin has counted
        self.rtc_datetime = (2000, 1, 1, 5, 0, 0, 42, 0)  # power-on: 2000-01-01, a Saturday
        self.rtc_memory = b""
        self.ds3231_fitted = True
        self.display_fitted = True
        self.encoder_steps = 0
        self.ssd1306 = types.SimpleNamespace(SSD1306_I2C=SSD1306_I2C)
        self.ds3231 = bytearray(19)
        self.ds3231[0x0F] = 0x80  # never set: its oscillator-stopped flag
        self.module = types.SimpleNamespace(Pin=Pin, PWM=PWM, ADC=ADC, WDT=WDT, Counter=Counter,
                                            Encoder=Encoder, RTC=RTC, I2C=I2C,
                                            WDT_RESET=3,
                                            reset_cause=lambda: fake.cause,
                                            unique_id=lambda: b"\x24\x0a\xc4\x12\x34\x56",
                                            reset=lambda: fake.calls.append(("reset",)))


class _Stdin:
    """MicroPython's sys.stdin as hw.py uses it: pollable, with an unbuffered .buffer (CPython's
    buffered one would read ahead of the poll)."""

    def __init__(self, fd):
        self.buffer = io.FileIO(fd, "rb")

    def fileno(self):
        return self.buffer.fileno()


class _Poll:
    """MicroPython's select.poll, with its ipoll (allocation-free on the chip), over CPython's."""

    def __init__(self):
        self._poll = select.poll()

    def register(self, obj, mask):
        self._poll.register(obj, mask)

    def ipoll(self, timeout_ms):
        return iter(self._poll.poll(timeout_ms))


class _Stdout:
    """MicroPython's sys.stdout as hw.py writes it: .buffer.write(buf, off, n), MicroPython's
    stream write with an offset and a length (CPython's takes the bytes alone)."""

    def __init__(self):
        self.buffer = self
        self.data = bytearray()
        self.writes = []  # the length of each write

    def write(self, buf, off=0, n=None):
        chunk = buf[off:] if n is None else buf[off:off + n]
        chunk = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        self.data += chunk
        self.writes.append(len(chunk))
        return len(chunk)


_MICROPYTHON_SELECT = types.SimpleNamespace(poll=_Poll, POLLIN=select.POLLIN,
                                            POLLHUP=select.POLLHUP, POLLERR=select.POLLERR)


@pytest.fixture
def fake(monkeypatch):
    machine = FakeMachine()
    monkeypatch.setitem(sys.modules, "machine", machine.module)
    monkeypatch.setitem(sys.modules, "ssd1306", machine.ssd1306)
    monkeypatch.delitem(sys.modules, "hw", raising=False)
    # The serial port is the REPL's stdin: a pipe here, whose other end plays the host.
    read_end, machine.serial_host = os.pipe()
    monkeypatch.setattr(sys, "stdin", _Stdin(read_end))
    monkeypatch.setitem(sys.modules, "select", _MICROPYTHON_SELECT)
    machine.now_ms = 1000  # MicroPython's time.ticks_ms and ticks_us, which CPython's lacks
    monkeypatch.setattr(time, "ticks_ms", lambda: machine.now_ms, raising=False)
    machine.now_us = 1000000
    monkeypatch.setattr(time, "ticks_us", lambda: machine.now_us, raising=False)
    monkeypatch.setattr(time, "ticks_add", ticks.ticks_add, raising=False)
    monkeypatch.setattr(time, "ticks_diff", ticks.ticks_diff, raising=False)
    yield machine
    sys.stdin.buffer.close()
    with contextlib.suppress(OSError):  # unless the test closed it
        os.close(machine.serial_host)
    sys.modules.pop("hw", None)


@pytest.fixture
def port(fake, monkeypatch):
    """The serial port's output: MicroPython's sys.stdout, recording what is written. (Set in
    hw's own view of sys: pytest puts its capture back into sys.stdout for each test.)"""
    fake.stdout = _Stdout()
    monkeypatch.setattr(_hw(), "sys", types.SimpleNamespace(stdin=sys.stdin, stdout=fake.stdout))
    return fake


def _hw():
    return importlib.import_module("hw")


def test_outputs_are_created_off_enable_first(fake):
    board = load_board("esp32-devkitc")
    _hw().Hardware(board)
    enable, pwm = board["laser"]["enable_pin"], board["laser"]["pwm_pin"]
    assert fake.calls[0] == ("Pin", enable, 3, -1, 0)
    pwm_call = next(c for c in fake.calls if c[0] == "PWM")
    assert pwm_call == ("PWM", pwm, 5000, 0)  # an explicit 0: never the ESP32's 50 % default
    assert fake.calls.index(pwm_call) > 0
    for pin in (board["indicators"]["emission_led_pin"], board["indicators"]["buzzer_pin"]):
        assert ("Pin", pin, 3, -1, 0) in fake.calls
    assert ("ADC", 34, 3) in fake.calls  # ADC1 pin, 11 dB passed explicitly


def test_inputs_use_the_board_pulls(fake):
    board = load_board("esp32-devkitc")
    _hw().Hardware(board)
    for spec in board["inputs"].values():
        assert ("Pin", spec["pin"], 1, 2, None) in fake.calls  # IN with PULL_UP


def test_gate_closes_before_the_duty_changes_and_opens_after(fake):
    from records import Outputs

    hw = _hw().Hardware(load_board())
    out = Outputs()
    out.laser_enable, out.pwm_duty_u16 = True, 30000
    del fake.calls[:]
    hw.actuate(out)
    assert fake.calls[:2] == [("duty_u16", 30000), ("value", 26, 1)]
    out.laser_enable, out.pwm_duty_u16 = False, 0
    del fake.calls[:]
    hw.actuate(out)
    assert fake.calls[:2] == [("value", 26, 0), ("duty_u16", 0)]


def test_sense_decodes_active_low_and_active_high(fake):
    from records import Inputs

    board = load_board()
    hw = _hw().Hardware(board)
    pins = {name: spec["pin"] for name, spec in board["inputs"].items()}
    fake.levels = {pins["key"]: 0, pins["interlock"]: 0, pins["estop"]: 0,
                   pins["footswitch_no"]: 0, pins["footswitch_nc"]: 1,
                   pins["arm"]: 1, pins["reset"]: 1}
    inp = Inputs(board["thermistor"]["samples"])
    hw.sense(inp, 1234)
    assert (inp.t_ms, inp.key_on, inp.interlock_closed, inp.estop_pressed) == (1234, 1, 1, 0)
    assert inp.footswitch_no_closed and not inp.footswitch_nc_closed
    assert not inp.arm_pressed and not inp.reset_pressed
    assert list(inp.thermistor_samples) == [1650000] * board["thermistor"]["samples"]
    fake.levels = {}  # every line floating high: key off, interlock open, e-stop pressed
    hw.sense(inp, 1244)
    assert not inp.key_on and not inp.interlock_closed and inp.estop_pressed


def test_an_open_wire_reads_safe_on_every_board_the_check_accepts(fake):
    # Every input x active level x pull x external pull the board check accepts, built by hw.py:
    # with every input's wire broken, each pin floats to the pull hw.py switched on, else to the
    # board's declared external resistor. Each must then read the state that permits nothing.
    import board as board_file
    from records import Inputs
    from test_board import SAFE_WHEN_OPEN, polarity_boards

    fields = {"key": "key_on", "interlock": "interlock_closed", "estop": "estop_pressed",
              "footswitch_no": "footswitch_no_closed", "footswitch_nc": "footswitch_nc_closed",
              "arm": "arm_pressed", "reset": "reset_pressed", "ack": "ack_pressed"}
    built = 0
    for _, _, data, refused in polarity_boards():
        try:
            board = board_file.validate(data)
        except board_file.BoardError:
            assert refused is not None
            continue
        del fake.calls[:]
        hw = _hw().Hardware(board)
        internal = {c[1]: c[3] for c in fake.calls if c[0] == "Pin" and c[2] == 1}  # IN pins
        fake.levels = {}
        for spec in board["inputs"].values():
            pull = {2: "up", 1: "down"}.get(internal[spec["pin"]], spec.get("external_pull"))
            assert pull in ("up", "down"), spec  # never floating
            fake.levels[spec["pin"]] = 1 if pull == "up" else 0
        inp = Inputs(board["thermistor"]["samples"])
        hw.sense(inp, 0)
        for name, safe in SAFE_WHEN_OPEN.items():
            assert getattr(inp, fields[name]) == safe, (name, board["inputs"][name])
        assert not hw.maintenance_button_held()
        built += 1
    assert built == 64


def test_safe_off_turns_everything_off(fake):
    hw = _hw().Hardware(load_board())
    del fake.calls[:]
    hw.safe_off()
    assert fake.calls == [("value", 26, 0), ("duty_u16", 0), ("value", 27, 0), ("value", 13, 0)]


def test_boot_safe_with_a_bad_board_file_touches_no_pin(fake, tmp_path, capsys):
    path = tmp_path / "board.json"
    path.write_text(json.dumps({"name": "broken"}))
    assert _hw().boot_safe(str(path)) is None
    assert fake.calls == []
    assert "pull-downs" in capsys.readouterr().out


def test_fast_pulses_gate_the_enable_line_with_a_pwm_and_stop_cleanly(fake):
    from records import Outputs

    hw = _hw().Hardware(load_board())
    out = Outputs()
    out.laser_enable, out.pwm_duty_u16, out.gate_hz, out.gate_duty_u16 = True, 30000, 5000, 32768
    del fake.calls[:]
    hw.actuate(out)
    # The set-point first, then the gate's PWM on the enable pin, created with its duty.
    assert fake.calls[:2] == [("duty_u16", 30000), ("PWM", 26, 5000, 32768)]
    del fake.calls[:]
    hw.actuate(out)  # steady: nothing re-created
    assert not [c for c in fake.calls if c[0] in ("PWM", "deinit", "duty_u16")]
    out.laser_enable, out.pwm_duty_u16, out.gate_hz = False, 0, 0
    del fake.calls[:]
    hw.actuate(out)
    # The gate stops first (its output low), the pin becomes a plain low output, then the duty.
    assert fake.calls[:3] == [("deinit", 26), ("init", 26, 3, 0), ("duty_u16", 0)]


def test_safe_off_stops_a_running_gate(fake):
    from records import Outputs

    hw = _hw().Hardware(load_board())
    out = Outputs()
    out.laser_enable, out.pwm_duty_u16, out.gate_hz, out.gate_duty_u16 = True, 30000, 5000, 32768
    hw.actuate(out)
    del fake.calls[:]
    hw.safe_off()
    assert fake.calls[:3] == [("deinit", 26), ("init", 26, 3, 0), ("duty_u16", 0)]


def test_shutdown_path_check_drives_the_gate_low_high_low_with_the_pwm_at_zero(fake):
    board = load_board("esp32-devkitc")
    enable, sense = board["laser"]["enable_pin"], board["laser"]["enable_sense_pin"]
    hw = _hw().Hardware(board)
    fake.wires[sense] = enable  # the read-back wired as the README says
    del fake.calls[:]
    assert hw.check_shutdown_path() is None
    assert fake.calls[0] == ("duty_u16", 0)
    writes = [c[2] for c in fake.calls if c[:2] == ("value", enable)]
    assert writes == [0, 1, 0, 0]  # and left low
    del fake.wires[sense]  # the read-back broken (reads high: the input's idle level here)
    assert hw.check_shutdown_path() == "enable line reads 1 when driven 0"
    fake.levels[sense] = 0  # stuck low: the gate never seen to open
    assert hw.check_shutdown_path() == "enable line reads 0 when driven 1"
    assert fake.driven[enable] == 0


def test_watchdog_starts_only_when_asked_and_reset_cause_is_read(fake):
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    hw.feed_watchdog()  # no watchdog yet: nothing to feed
    assert not [c for c in fake.calls if c[0] in ("WDT", "feed")]
    hw.start_watchdog(500)
    hw.feed_watchdog()
    assert [c for c in fake.calls if c[0] in ("WDT", "feed")] == [("WDT", 500), ("feed",)]
    assert _hw().reset_by_watchdog() is False
    fake.cause = 3
    assert _hw().reset_by_watchdog() is True


def test_the_device_is_named_by_its_unique_id_in_hex(fake):
    assert _hw().device_id() == "240ac4123456"  # the fake machine's unique_id(), as text


def test_the_wall_clock_is_unknown_until_set_then_read_from_the_rtc(fake, monkeypatch):
    # MicroPython's time.mktime counts UTC from the port's epoch; CPython's is local time.
    monkeypatch.setattr(time, "mktime", lambda t: calendar.timegm(tuple(t[:6]) + (0, 0, 0)))
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    assert hw.wall_clock_s() is None  # the RTC counts from 2000-01-01 at power-on: not a time
    hw.set_wall_clock(1796515200)  # 2026-12-06T00:00:00Z, a Sunday
    assert fake.rtc_datetime == (2026, 12, 6, 6, 0, 0, 0, 0)  # the weekday fourth, Monday 0
    # Set, in the RTC memory that a soft reset keeps (written whole: the rest is the session's).
    assert fake.rtc_memory[:4] == b"LC1\0"
    assert hw.wall_clock_s() == 1796515200
    fake.rtc_datetime = (2026, 12, 6, 6, 1, 2, 3, 500)
    assert hw.wall_clock_s() == 1796515200 + 3723
    # A soft reset: the next boot's Hardware finds the mark, and the time with it.
    again = _hw().Hardware(load_board("esp32-devkitc"))
    assert again.wall_clock_s() == 1796515200 + 3723
    fake.rtc_memory = b""  # a power cut: the RTC memory is gone, and the time with it
    assert _hw().Hardware(load_board("esp32-devkitc")).wall_clock_s() is None


def _with_battery_clock():
    board = load_board("esp32-devkitc")
    board["rtc"] = {"part": "DS3231", "i2c": 0, "sda_pin": 16, "scl_pin": 17}
    return board


def test_a_battery_backed_clock_keeps_the_time_through_a_power_cut(fake, monkeypatch):
    monkeypatch.setattr(time, "mktime", lambda t: calendar.timegm(tuple(t[:6]) + (0, 0, 0)))
    hw = _hw().Hardware(_with_battery_clock())
    assert ("I2C", 0, 17, 16, 400000) in fake.calls
    assert hw.restore_wall_clock() == \
        "DS3231 has no time to trust (its oscillator stopped): a host must set it"
    assert hw.wall_clock_s() is None
    assert hw.set_wall_clock(1796515200) is None  # 2026-12-06T00:00:00Z, a Sunday
    assert bytes(fake.ds3231[0:7]) == b"\x00\x00\x00\x07\x06\x12\x26" and fake.ds3231[0x0F] == 0
    # A soft reset: the RTC kept the time, the DS3231 is not asked.
    fake.ds3231_fitted = False
    again = _hw().Hardware(_with_battery_clock())
    assert again.restore_wall_clock() is None and again.wall_clock_s() == 1796515200
    # A power cut: the RTC and its memory are gone; the DS3231 ran on (here to 00:01:05).
    fake.ds3231_fitted = True
    fake.rtc_memory = b""
    fake.rtc_datetime = (2000, 1, 1, 5, 0, 0, 0, 0)
    fake.ds3231[0] = 0x05
    fake.ds3231[1] = 0x01
    after = _hw().Hardware(_with_battery_clock())
    assert after.wall_clock_s() is None
    assert after.restore_wall_clock() is None
    assert after.wall_clock_s() == 1796515200 + 65
    assert fake.rtc_datetime == (2026, 12, 6, 6, 0, 1, 5, 0)  # the weekday from the date


def test_a_battery_clock_that_does_not_answer_leaves_the_time_unknown_and_says_so(fake,
                                                                                 monkeypatch):
    monkeypatch.setattr(time, "mktime", lambda t: calendar.timegm(tuple(t[:6]) + (0, 0, 0)))
    fake.ds3231_fitted = False
    hw = _hw().Hardware(_with_battery_clock())
    problem = hw.restore_wall_clock()
    assert problem.startswith("DS3231 does not answer") and hw.wall_clock_s() is None
    # Setting the time still sets the RTC; the answer says the DS3231 kept its old time.
    assert "it keeps its old time" in hw.set_wall_clock(1796515200)
    assert hw.wall_clock_s() == 1796515200
    # A board without the part (and without a panel) never touches I2C.
    fake.calls.clear()
    board = load_board("esp32-devkitc")
    del board["panel"]
    plain = _hw().Hardware(board)
    assert plain.restore_wall_clock() is None and plain.set_wall_clock(1796515200) is None
    assert [c for c in fake.calls if c[0] == "I2C"] == []


def test_rtc_memory_is_written_whole_and_found_again_after_a_reset(fake):
    module = _hw()
    hw = module.Hardware(load_board("esp32-devkitc"))
    assert hw.rtc_memory == bytearray(module.RTC_MEMORY_BYTES)  # power-on: nothing kept
    hw.rtc_memory[module.RTC_MEMORY_FREE] = 7
    hw.keep_rtc_memory()
    assert len(fake.rtc_memory) == module.RTC_MEMORY_BYTES
    assert module.Hardware(load_board("esp32-devkitc")).rtc_memory[module.RTC_MEMORY_FREE] == 7


def test_the_serial_port_is_read_byte_by_byte_without_blocking(fake):
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    assert hw.read_serial_byte() == -1  # nothing waiting: returns at once
    os.write(fake.serial_host, b"ok\n")
    assert [hw.read_serial_byte() for _ in range(4)] == [ord("o"), ord("k"), 10, -1]
    os.close(fake.serial_host)  # the host side closed: end of input, no more polling
    assert hw.read_serial_byte() == -1 and hw._serial is None


def test_restart_turns_the_laser_off_then_resets(fake):
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    fake.calls.clear()
    hw.restart()
    assert fake.calls[-1] == ("reset",)
    assert ("reset",) not in fake.calls[:-1] and len(fake.calls) > 1  # the outputs went off first


# -- the serial port's output: never more than the UART's 128-byte FIFO takes ---------------------


def test_a_serial_write_takes_only_what_the_uart_fifo_has_room_for(port):
    hw = _hw().Hardware(load_board("esp32-devkitc"))  # 115200 baud: 11,520 bytes a second
    line = bytearray(range(256)) + bytearray(44)
    assert hw.write_serial(line, 0, 300) == 0  # what the boot printed may fill it: full at first
    port.now_us += 11112  # 128 bytes' time on the line
    assert hw.write_serial(line, 0, 300) == 128
    assert hw.write_serial(line, 128, 172) == 0  # full
    port.now_us += 1000  # 11.52 bytes' time: 11 are out
    assert hw.write_serial(line, 128, 172) == 11
    # At the loop's end it may wait, as the chip's write does: all of it at once.
    assert hw.write_serial(line, 139, 161, wait=True) == 161
    assert bytes(port.stdout.data) == bytes(line) and port.stdout.writes == [128, 11, 161]
    port.now_us += 2 ** 29 + 5  # a write long ago (ticks_us wraps at 2**30 on the chip)
    assert hw.write_serial(line, 0, 300) == 128


@settings(max_examples=settings.default.max_examples * 2,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(baud=st.sampled_from([9600, 57600, 115200, 921600]),
       writes=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 300)), max_size=60))
def test_the_serial_estimate_never_writes_more_than_the_fifo_holds(port, baud, writes):
    """Against the exact line: a byte leaves the FIFO once its ten bits are out, the line sending
    while the FIFO holds anything. No write the estimate allows would have to wait."""
    board = load_board("esp32-devkitc")
    board["serial"]["baud"] = baud
    hw = _hw().Hardware(board)  # a fresh one for each example (the fixture is the test's)
    byte_us = fractions.Fraction(10000000, baud)
    done_us = port.now_us + 128 * byte_us  # the FIFO full at the start, as the estimate says
    for delay_us, n in writes:
        port.now_us += delay_us
        left = max(0, done_us - port.now_us)
        in_fifo = -(-left // byte_us)  # bytes not yet wholly sent
        written = hw.write_serial(bytearray(n), 0, n)
        assert 0 <= written <= n and in_fifo + written <= 128, (in_fifo, written)
        done_us = max(done_us, port.now_us) + written * byte_us


def test_the_serial_estimate_keeps_up_with_the_line(port):
    """Written a tick at a time for a second, the port carries what the line does, within a
    line's worth of rounding: the estimate is cautious, not slow."""
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    line = bytearray(20000)
    written = 0
    for _ in range(100):
        port.now_us += 10000
        written += hw.write_serial(line, written, len(line) - written)
    assert 11520 - 128 <= written <= 11520


def test_the_panel_is_opened_from_the_board_and_sensed_each_tick(fake):
    from records import Inputs

    board = load_board("esp32-devkitc")
    panel = board["panel"]
    hw = _hw().Hardware(board)
    # The encoder on pulse counter unit 1 (unit 0 counts the enable line), its glitch filter on;
    # GPIO 35 and 36 have no pulls of their own (the encoder module's resistors serve).
    assert ("Encoder", 1, 35, 36, 12000, 1) in fake.calls
    assert ("Pin", 35, 1, -1, None) in fake.calls and ("Pin", 36, 1, -1, None) in fake.calls
    for button in ("select", "back"):
        assert ("Pin", panel[button]["pin"], 1, 2, None) in fake.calls  # IN with PULL_UP
    assert ("I2C", 0, 17, 16, 400000) in fake.calls
    assert ("SSD1306_I2C", 128, 64, 0x3C) in fake.calls and hw.display is not None
    assert hw.display_problem is None
    fake.encoder_steps = -3
    fake.levels[panel["select"]["pin"]] = 0  # active low: pressed
    inp = Inputs(5)
    hw.sense(inp, 0)
    assert ("Encoder.value", 0) in fake.calls  # read and counted again from 0
    assert inp.encoder_steps == -3 and inp.select_pressed and not inp.back_pressed


def test_a_display_that_does_not_answer_leaves_no_panel_and_says_why(fake):
    fake.display_fitted = False
    hw = _hw().Hardware(load_board("esp32-devkitc"))
    assert hw.display is None
    assert hw.display_problem.startswith("display does not answer on I2C 0")


def test_the_display_shares_the_ds3231_bus(fake):
    board = load_board("sim")  # the DS3231 and the display on I2C 0, the same two lines
    _hw().Hardware(board)
    assert [c for c in fake.calls if c[0] == "I2C"] == [("I2C", 0, 17, 16, 400000)]

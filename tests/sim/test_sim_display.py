# The operator panel on the virtual device (sim_display, sim_machine.I2C and Encoder, simworld),
# driven by micropython-lib's real ssd1306 driver, on both interpreters the virtual device runs
# on. Run by tests/test_sim_display.py through tests/firmware/mpy_runner.py, the driver's folder
# on the path (or frozen into the chip interpreter).
import json

import framebuf
import sim_display
import sim_machine as machine
import sim_plant
import sim_time as time
import simworld
import ssd1306
from support import heap_bytes

_HERE = __file__.rsplit("/", 1)[0]
_REPO = _HERE + "/../.."


def _world(edit=None, **config):
    with open(_REPO + "/boards/sim.json") as f:
        board = json.load(f)
    if edit is not None:
        edit(board)
    config.setdefault("table_path", _REPO + "/host_tools/vdevice/data/" +
                      board["plant"]["thermistor_table"])
    simworld.WORLD = simworld.World(config, board)
    return simworld.WORLD


def _raises(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s" % exc_type.__name__)


def _bus(w, freq=400000):
    """The firmware's bus: the panel's lines, on its controller."""
    panel = w.board["panel"]
    return machine.I2C(panel["i2c"], scl=machine.Pin(panel["scl_pin"]),
                       sda=machine.Pin(panel["sda_pin"]), freq=freq)


def _oled(w=None, **config):
    """A world with the sim board's panel, and the display initialised by the real driver."""
    w = w or _world(**config)
    return w, ssd1306.SSD1306_I2C(128, 64, _bus(w))


def _seen(w):
    return bytes(w.display.image(bytearray(sim_display.BYTES)))


def _px(image, x, y):
    return image[(y >> 3) * 128 + x] >> (y & 7) & 1


def _glyph(ch):
    """The 8 bytes framebuf draws for a character (MONO_VLSB, one byte a column)."""
    buf = bytearray(8)
    framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_VLSB).text(ch, 0, 0, 1)
    return bytes(buf)


def _cmds(w, *data):
    """One write of command bytes (control byte 00h: a stream of commands)."""
    _bus(w).writeto(0x3C, bytes((0x00,) + data))


def _data(w, data):
    _bus(w).writeto(0x3C, b"\x40" + bytes(data))


# -- the driver's pixels --------------------------------------------------------------------------


def test_the_driver_initialises_a_dark_lit_panel_and_text_shows_as_its_framebuffer():
    w = _world()
    assert not w.display.lit() and _seen(w) == bytes(1024)  # power-on: off
    w, oled = _oled(w)
    d = w.display
    assert d.lit() and d.mode == sim_display.HORIZONTAL and d.contrast == 0xFF
    assert d.seg_remap and d.com_remap and d.mux == 64 and d.com_pins == 0x12
    assert _seen(w) == bytes(1024)  # fill(0), show()
    oled.text("HELLO", 0, 0)
    oled.text("world", 8, 56)
    oled.show()
    image = _seen(w)
    assert image == bytes(oled.buffer)
    for i, ch in enumerate("HELLO"):  # each glyph where framebuf puts it
        assert image[i * 8:i * 8 + 8] == _glyph(ch), ch
    assert image[7 * 128 + 8:7 * 128 + 16] == _glyph("w")
    assert _px(image, 0, 0) == 0 and _px(image, 1, 0) == 1 and _px(image, 1, 7) == 0  # H


def test_a_partial_page_write_changes_only_its_window_and_allocates_nothing():
    w, oled = _oled()
    oled.text("HELLO", 0, 0)
    oled.show()
    oled.fill_rect(16, 24, 16, 8, 1)  # page 3, columns 16..31: sent
    oled.text("X", 64, 40)  # page 5: drawn, never sent
    window = memoryview(oled.buffer)[3 * 128 + 16:3 * 128 + 32]

    def update():  # as the firmware's tick would: no tuple of commands either
        oled.write_cmd(0x21)
        oled.write_cmd(16)
        oled.write_cmd(31)
        oled.write_cmd(0x22)
        oled.write_cmd(3)
        oled.write_cmd(3)
        oled.write_data(window)

    update()
    image = _seen(w)
    assert image[3 * 128 + 16:3 * 128 + 32] == b"\xff" * 16
    assert image[:5] != bytes(5) and image[5 * 128 + 64:5 * 128 + 72] == bytes(8)
    expected = bytearray(oled.buffer)
    expected[5 * 128 + 64:5 * 128 + 72] = bytes(8)
    assert image == bytes(expected)
    assert heap_bytes(update) in (0, None)  # the tick's path: nothing on the heap


def test_horizontal_addressing_wraps_to_the_next_page_of_the_window_then_its_first():
    w, _ = _oled()
    _cmds(w, 0x21, 10, 11, 0x22, 2, 3)
    _data(w, [1, 2, 3, 4, 5, 6])
    ram = w.display.ram
    assert (ram[2 * 128 + 10], ram[2 * 128 + 11], ram[3 * 128 + 10], ram[3 * 128 + 11]) == \
        (5, 6, 3, 4)  # the fifth byte back at the window's start
    assert ram[2 * 128 + 12] == 0 and ram[4 * 128 + 10] == 0


def test_vertical_addressing_runs_down_the_pages_then_across():
    w, _ = _oled()
    _cmds(w, 0x20, 0x01, 0x21, 5, 6, 0x22, 0, 1)
    _data(w, [1, 2, 3, 4, 5])
    ram = w.display.ram
    assert (ram[5], ram[128 + 5], ram[6], ram[128 + 6]) == (5, 2, 3, 4)


def test_page_addressing_runs_along_one_page_and_wraps_to_its_start_column():
    w, _ = _oled()
    _cmds(w, 0x20, 0x02, 0xB3, 0x05, 0x17)  # page 3, column 75h = 117
    _data(w, range(1, 15))  # 11 bytes to column 127, then 3 from column 117 again
    ram = w.display.ram
    assert bytes(ram[3 * 128 + 117:3 * 128 + 128]) == bytes([12, 13, 14] + list(range(4, 12)))
    assert ram[4 * 128 + 117] == 0 and ram[3 * 128 + 116] == 0
    assert w.display.page == 3 and w.display.col == 120


def test_a_command_split_over_writes_and_single_byte_controls():
    w, _ = _oled()
    bus = _bus(w)
    bus.writeto(0x3C, b"\x00\x21\x08")  # the column range's start ...
    bus.writeto(0x3C, b"\x00\x0f")  # ... and its end, in the next write
    bus.writeto(0x3C, b"\x80\x22\x80\x01\x80\x01")  # Co = 1: a control byte before each
    bus.writeto(0x3C, b"\xc0\xaa\xc0\x55")  # two single data bytes
    bus.writevto(0x3C, [b"\x40", b"\x01\x02", memoryview(b"\x03\x04\x05\x06\x07\x08\x09")])
    # AAh and 55h at columns 8 and 9, then 1..9 from column 10: past 15, back to 8
    assert bytes(w.display.ram[128 + 8:128 + 16]) == b"\x07\x08\x09\x02\x03\x04\x05\x06"
    assert bytes(w.display.ram[128 + 16:128 + 17]) == b"\x00"
    bus.writeto(0x3C, b"\x80\x81")
    assert w.display.contrast == 0xFF  # not yet: its argument is still to come
    bus.writeto(0x3C, b"\x80\x10")
    assert w.display.contrast == 0x10
    bus.writeto(0x3C, b"\x00\x40\xa7")  # 40h in a command stream: start line 0, then invert
    assert w.display.start_line == 0 and w.display.inverted


def test_off_inverted_entirely_on_and_no_charge_pump_as_a_person_sees_them():
    w, oled = _oled()
    oled.text("HI", 0, 0)
    oled.show()
    shown = bytes(oled.buffer)
    oled.poweroff()
    assert _seen(w) == bytes(1024)  # off: dark, the RAM kept
    oled.poweron()
    assert _seen(w) == shown
    oled.invert(1)
    assert _seen(w) == bytes(b ^ 0xFF for b in shown)
    oled.invert(0)
    oled.write_cmd(0xA5)
    assert _seen(w) == b"\xff" * 1024
    oled.write_cmd(0xA4)
    oled.contrast(0)  # dimmer, the same pixels
    assert _seen(w) == shown
    _cmds(w, 0x8D, 0x10)  # the charge pump off: the panel has no supply
    assert _seen(w) == bytes(1024)


def test_the_remaps_start_line_and_mux_move_the_image_as_the_datasheet_says():
    w, oled = _oled()
    oled.text("AB", 0, 0)
    oled.pixel(127, 63, 1)
    oled.show()
    buf = bytes(oled.buffer)
    oled.rotate(0)  # C0h, A0h: the RAM seen upside down
    image = _seen(w)
    for x, y in ((0, 0), (1, 1), (9, 3), (127, 63), (126, 62)):
        assert _px(image, 127 - x, 63 - y) == _px(buf, x, y), (x, y)
    oled.rotate(1)
    _cmds(w, 0x48)  # start line 8: each row shows the RAM row 8 below
    image = _seen(w)
    assert all(_px(image, x, y) == _px(buf, x, (y + 8) % 64) for x in (0, 1, 8, 9, 127)
               for y in range(64))
    _cmds(w, 0x40, 0xD3, 4)  # offset 4: the same shift by COM
    image = _seen(w)
    assert all(_px(image, x, y) == _px(buf, x, (y + 4) % 64) for x in (0, 1, 8, 9, 127)
               for y in range(64))
    _cmds(w, 0xD3, 0, 0xA8, 31)  # 32 MUX: with C8h, COM0..31 only, the bottom half of the glass
    image = _seen(w)
    assert image[:512] == bytes(512) and image[512:] == buf[:512]


def test_a_reset_of_the_chip_keeps_the_screen_and_a_power_cut_darkens_it():
    w, oled = _oled()
    oled.text("KEEP", 0, 0)
    oled.show()
    shown = _seen(w)
    w.reset_pins("watchdog")
    w.reset_pins("soft reset")
    assert _seen(w) == shown  # the ESP32's reset does not reach the display
    _raises(simworld.HardReset, w.set_input, "fault", "power_cut")
    assert _seen(w) == bytes(1024) and not w.display.on  # its power-on state: off
    assert w.display.mode == sim_display.PAGE and bytes(w.display.ram) == bytes(oled.buffer)
    _, again = _oled(w)  # the firmware initialises it on the next boot
    again.text("KEEP", 0, 0)
    again.show()
    assert _seen(w) == shown


# -- the record of what was seen ----------------------------------------------------------------


def _screens(w):
    flat = w.trace["display"]
    return [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]


def _apply(image, changes):
    import binascii

    for run in changes.split():
        offset, data = run.split(":")
        raw = binascii.unhexlify(data)
        image[int(offset):int(offset) + len(raw)] = raw
    return image


def test_a_screen_is_recorded_once_it_has_stood_for_50_ms_stamped_when_it_appeared():
    w, oled = _oled()
    time.sleep_ms(100)
    assert _screens(w) == []  # init shows a dark screen: no change from the dark glass
    oled.text("ONE", 0, 0)
    oled.show()
    time.sleep_ms(30)
    oled.text("TWO", 0, 8)  # before ONE stood 50 ms: only the second is seen
    oled.show()
    time.sleep_ms(49)
    assert _screens(w) == []
    time.sleep_ms(1)
    [(s, us, changes)] = _screens(w)
    assert (s, us) == (0, 130000)
    assert bytes(_apply(bytearray(1024), changes)) == bytes(oled.buffer)
    assert [run.split(":")[0] for run in changes.split()] == ["1", "129"]  # O's, T's columns
    oled.fill(0)  # gone and back within 50 ms: nothing new was seen
    oled.show()
    time.sleep_ms(20)
    oled.text("ONE", 0, 0)
    oled.text("TWO", 0, 8)
    oled.show()
    time.sleep_ms(200)
    assert len(_screens(w)) == 1
    oled.fill_rect(0, 16, 8, 8, 1)  # a small change: its bytes only
    oled.show()
    time.sleep_ms(60)
    assert _screens(w)[1][2] == "256:ffffffffffffffff"
    oled.poweroff()
    time.sleep_ms(60)
    assert bytes(_apply(_apply(bytearray(1024), changes), _screens(w)[2][2])) == bytes(1024)


def test_the_last_screen_is_recorded_at_the_end_however_briefly_shown():
    w, oled = _oled(until_s=1.0)
    time.sleep_ms(990)
    oled.text("END", 0, 0)
    oled.show()
    _raises(simworld.SimEnd, time.sleep_ms, 100)
    oled.fill(0)  # the firmware's `finally`, after the end: not seen
    oled.show()
    screens = _screens(w)
    assert [(s, us) for s, us, _ in screens] == [(0, 990000)]
    assert w.result()["trace"]["display"] == w.trace["display"]
    w, oled = _oled()  # a run without an end (the console): its result records the last screen
    oled.text("NOW", 0, 0)
    oled.show()
    assert len(w.result()["trace"]["display"]) == 3


def test_dropping_the_trace_keeps_no_screen_and_a_board_without_a_panel_records_none():
    w, oled = _oled()
    w.drop_trace()
    oled.text("X", 0, 0)
    oled.show()
    time.sleep_ms(100)
    w.result()
    assert w.trace["display"] is sim_plant.NO_TRACE and w._display_due_us is None

    def no_panel(board):
        del board["panel"]

    w = _world(no_panel, ds3231=True)
    rtc = w.board["rtc"]  # the bus the display would have shared
    bus = machine.I2C(rtc["i2c"], scl=machine.Pin(rtc["scl_pin"]), sda=machine.Pin(rtc["sda_pin"]))
    assert _raises(OSError, ssd1306.SSD1306_I2C, 128, 64, bus).args[0] == 19  # ENODEV
    assert bus.scan() == [0x68] and w.result()["trace"]["display"] == []


# -- the bus ------------------------------------------------------------------------------------


def test_devices_answer_on_their_own_lines_and_the_bus_counts_its_time():
    w = _world(ds3231=True)
    bus = _bus(w)
    assert bus.scan() == [0x3C, 0x68]  # the display shares the DS3231's lines
    assert bus.readfrom_mem(0x68, 0x0F, 1) == b"\x80"
    panel = w.board["panel"]
    other = machine.I2C(1, scl=machine.Pin(panel["sda_pin"]), sda=machine.Pin(panel["scl_pin"]))
    assert other.scan() == []  # scl and sda swapped: nothing answers
    e = _raises(OSError, other.writeto, 0x3C, b"\x80\xaf")
    assert e.args[0] == 19  # ENODEV, as the ESP32's
    assert not w.display.on
    # Bus time: nine bit times a byte, the address too, and one per start or stop condition.
    for freq, bit_ns in ((400000, 2500), (100000, 10000)):
        w = _world()
        bus = _bus(w, freq)
        assert bus.writeto(0x3C, b"\x80\xaf") == 2
        assert (w.i2c_bus_s, w.i2c_bus_us, w._i2c_bus_ns) == \
            (0, (9 * 3 + 2) * bit_ns // 1000, (9 * 3 + 2) * bit_ns % 1000)
        before = w.i2c_bus_us * 1000 + w._i2c_bus_ns
        _raises(OSError, bus.writeto, 0x3D, b"\x00")  # only its address on the bus
        assert w.i2c_bus_us * 1000 + w._i2c_bus_ns - before == (9 + 2) * bit_ns
    w, oled = _oled()
    start = w.i2c_bus_us * 1000 + w._i2c_bus_ns
    oled.show()  # 6 commands of 2 bytes, then 1025 bytes: 23.5 ms at 400 kHz
    assert w.i2c_bus_us * 1000 + w._i2c_bus_ns - start == \
        (6 * (9 * 3 + 2) + 9 * 1026 + 2) * 2500
    assert w.now_us == 0  # no virtual time passes for it (yet)
    for _ in range(50):  # carried into whole seconds
        oled.show()
    assert w.i2c_bus_s == 1 and 0 <= w.i2c_bus_us < 1000000


# -- the encoder and the buttons ----------------------------------------------------------------


def _encoder(w, unit=1, swap=False, **kwargs):
    a, b = w.board["panel"]["encoder_a_pin"], w.board["panel"]["encoder_b_pin"]
    if swap:
        a, b = b, a
    return machine.Encoder(unit, machine.Pin(a, machine.Pin.IN, machine.Pin.PULL_UP),
                           machine.Pin(b, machine.Pin.IN, machine.Pin.PULL_UP), **kwargs)


def test_the_encoder_counts_detents_clockwise_positive_and_value_0_reads_and_clears():
    w = _world(events=[{"at_s": 0.1, "input": "encoder", "value": 3},
                       {"at_s": 0.2, "input": "encoder", "value": -1},
                       {"at_s": 0.3, "input": "select", "value": True},
                       {"at_s": 0.4, "input": "back", "value": True},
                       {"at_s": 0.5, "input": "select", "value": False}])
    enc = _encoder(w, phases=1, filter_ns=1000)
    assert enc.value(0) == 0 and enc.phases() == 1
    time.sleep_ms(150)
    assert enc.value(0) == 3
    assert heap_bytes(enc.value, 0) in (0, None)
    time.sleep_ms(100)
    assert enc.value() == -1 and enc.value(0) == -1 and enc.value() == 0
    assert w.encoder_steps == 2
    spec = w.board["panel"]
    select = machine.Pin(spec["select"]["pin"], machine.Pin.IN, machine.Pin.PULL_UP)
    back = machine.Pin(spec["back"]["pin"], machine.Pin.IN, machine.Pin.PULL_UP)
    active = {name: 1 if spec[name]["active"] == "high" else 0 for name in ("select", "back")}
    assert select.value() != active["select"] and back.value() != active["back"]  # released
    time.sleep_ms(200)
    assert select.value() == active["select"] and back.value() == active["back"]
    time.sleep_ms(100)
    assert select.value() != active["select"]
    assert w.trace["inputs"] == [0, 100000, "encoder", 3, 0, 200000, "encoder", -1,
                                 0, 300000, "select", True, 0, 400000, "back", True,
                                 0, 500000, "select", False]
    assert w.snapshot()["inputs"]["select"] is False and w.snapshot()["encoder"] == 2


def test_phases_swapped_phases_and_other_pins():
    w = _world()
    x1, x2, x4 = _encoder(w, 1), _encoder(w, 2, phases=2), _encoder(w, 3, phases=4)
    swapped = _encoder(w, 4, swap=True)
    elsewhere = machine.Encoder(5, machine.Pin(26), machine.Pin(27))
    w.set_input("encoder", 2)
    assert [e.value() for e in (x1, x2, x4, swapped, elsewhere)] == [2, 4, 8, -2, 0]
    _raises(ValueError, _encoder, w, 6, phases=3)
    assert x1.value(10) == 2 and x1.value() == 10  # value(v) returns the count, then sets it


def test_an_encoder_unit_is_a_singleton_pcnt_in_use_and_stops_at_deinit_and_reset():
    w = _world()
    enc = _encoder(w, 1)
    w.set_input("encoder", 5)
    assert machine.Encoder(1) is enc and enc.value() == 5  # the unit as it is, counting on
    assert _encoder(w, 1) is enc and enc.value() == 0  # new arguments: init, from 0
    e = _raises(ValueError, machine.Counter, 1, machine.Pin(39))
    assert e.args[0] == "PCNT in use"
    counter = machine.Counter(0, machine.Pin(39), edge=machine.Counter.RISING)
    assert _raises(ValueError, _encoder, w, 0).args[0] == "PCNT in use"
    assert counter.value() == 0
    enc.deinit()
    _raises(RuntimeError, enc.value)
    w.set_input("encoder", 1)  # counted by no unit
    assert _raises(ValueError, machine.Counter, 1, machine.Pin(39)).args[0] == "PCNT in use"
    enc.init(machine.Pin(w.encoder_pins[0]), machine.Pin(w.encoder_pins[1]))
    w.set_input("encoder", 1)
    assert enc.value() == 1
    w.reset_pins("soft reset")
    _raises(RuntimeError, enc.value)  # stopped, and the units free again
    assert machine.Counter(1, machine.Pin(39)).value() == 0


def test_the_encoder_s_phases_rest_high_and_its_pins_become_pulled_up_inputs():
    w = _world()
    a, b = w.encoder_pins
    assert machine.Pin(a, machine.Pin.IN).value() == 1
    assert machine.Pin(b, machine.Pin.IN).value() == 1
    out = machine.Pin(27, machine.Pin.OUT, value=0)
    machine.Encoder(2, out, machine.Pin(26))
    assert 27 not in w.outputs and out.value() == 1  # the PCNT took the line: its pull-up


def test_a_board_without_a_panel_has_no_encoder_input():
    def no_panel(board):
        del board["panel"]

    w = _world(no_panel)
    _raises(ValueError, w.set_input, "encoder", 1)
    _raises(ValueError, w.set_input, "select", True)
    assert machine.Encoder(1, machine.Pin(14), machine.Pin(15)).value() == 0

"""The operator panel on the virtual device: the SSD1306 model, the I2C bus, the encoder and the
buttons (tests/sim/test_sim_display.py, on both MicroPython interpreters, with micropython-lib's
real ssd1306 driver); and on the host, what the report makes of the screens it records: the text
read back from the pixels, the PNG frames (host_tools/display.py), the scenario's panel inputs."""

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from micropython_runs import INTERPRETERS, assert_all_pass, deployed_lib

from host_tools import cli, display, paths, scenario, vdevice
from host_tools import report as report_mod

SIM_TESTS = Path(__file__).resolve().parent / "sim"
GOOD = {"protocol": {"power_w": 10.0, "dose_j_cm2": 1.0, "area_cm2": 10.0}, "until_s": 5}


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_simulated_panel_on_micropython(interpreter):
    assert_all_pass(interpreter, SIM_TESTS, "test_sim_display", heap=vdevice.DEFAULT_HEAP)


# -- the screens a scenario records, read back ---------------------------------------------------

# Runs on the 64-bit MicroPython: the world of the sim board, the real driver drawing three
# screens (the third only at the end), then the world's result as a scenario's trace file has it.
_DRAW = """
import json, sys
import simworld
simworld.install()
import sim_machine as machine
import sim_time as time
import ssd1306
with open(sys.argv[1]) as f:
    board = json.load(f)
w = simworld.World({"table_path": sys.argv[2], "until_s": 2.0}, board)
simworld.WORLD = w
p = board["panel"]
bus = machine.I2C(p["i2c"], scl=machine.Pin(p["scl_pin"]), sda=machine.Pin(p["sda_pin"]))
oled = ssd1306.SSD1306_I2C(128, 64, bus)
time.sleep_ms(500)
oled.text("KNEE", 0, 0)
oled.text("Skin type V", 0, 16)
oled.fill_rect(0, 48, 40, 8, 1)
oled.text("50%", 48, 48)
oled.pixel(123, 60, 1)
oled.show()
time.sleep_ms(1000)
oled.fill_rect(0, 48, 128, 16, 0)
oled.fill_rect(0, 48, 80, 8, 1)
oled.show()
time.sleep_ms(480)
oled.invert(1)
try:
    time.sleep_ms(100)
except simworld.SimEnd:
    pass
print(json.dumps(w.result()))
"""


@pytest.fixture(scope="module")
def world():
    """The world's result after _DRAW: screens at 0.5 s and 1.5 s, and the inverted one that
    the end cut short at 1.98 s."""
    _, board = vdevice.load_board("sim")
    config = vdevice.sim_config(board)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(
        [str(paths.SIM_MPY), str(deployed_lib())]))
    proc = subprocess.run([paths.micropython_executable(), "-X", "heapsize=" +
                           vdevice.DEFAULT_HEAP, "-c", _DRAW, str(paths.board_path("sim")),
                           config["table_path"]],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_report_reads_each_screen_back_from_its_pixels(world):
    report = report_mod.build_report({"board": "sim"}, "", world)
    first = ["KNEE", "", "Skin type V", "", "", "", "\u2588\u2588\u2588\u2588\u2588 50%",
             " " * 15 + "?"]  # the bar's lit cells, a stray pixel in a cell of its own
    second = ["KNEE", "", "Skin type V", "", "", "", "\u2588" * 10, ""]
    # Inverted, as the end caught it: blank cells lit, lit cells blank, no glyph matches.
    swap = {" ": "\u2588", "\u2588": " "}
    third = ["".join(swap.get(ch, "?") for ch in line.ljust(16)).rstrip(" ") for line in second]
    assert third[0] == "????" + "\u2588" * 12 and third[6] == " " * 10 + "\u2588" * 6
    assert report["display"] == [{"at_s": 0.5, "text": first}, {"at_s": 1.5, "text": second},
                                 {"at_s": 1.98, "text": third}]
    assert [t for t, _ in report["trace"]["display"]] == [0.5, 1.5, 1.98]
    # The trace keeps the changes only: the second screen is the bar's and the stray pixel's.
    assert [run.split(":")[0] for run in report["trace"]["display"][1][1].split()] == \
        [str(6 * 128 + 40), str(7 * 128 + 123)]


def test_frames_are_whole_images_and_text_reads_framebuf_s_font():
    image = bytearray(1024)
    changes = [(1.0, "0:ff 130:0102"), (2.0, "1:ff"), (3.0, "0:00")]
    frames = display.frames(changes)
    assert [t for t, _ in frames] == [1.0, 2.0, 3.0]
    image[0], image[130], image[131] = 0xFF, 1, 2
    assert frames[0][1] == bytes(image)
    image[1] = 0xFF
    assert frames[1][1] == bytes(image)
    assert frames[2][1][:2] == b"\x00\xff"
    assert display.pixel(frames[0][1], 2, 8) == 1 and display.pixel(frames[0][1], 3, 9) == 1
    # The font is framebuf's own, as MicroPython draws it: 95 distinct glyphs, then the
    # blank and the full cell.
    glyphs = display.glyphs()
    assert len(glyphs) == 95 + 1 and glyphs[bytes(8)] == " " and glyphs[b"\xff" * 8] == "\u2588"
    assert display.FONT_CACHE.exists()
    font = {ch: cell for cell, ch in glyphs.items()}
    line = b"".join(font[ch] for ch in "Fitzpatrick I-VI")
    assert display.text(line + bytes(1024 - 128)) == ["Fitzpatrick I-VI"] + [""] * 7
    with pytest.raises(ValueError, match="1024 bytes"):
        display.text(bytes(1023))


def _decode_png(data):
    """(width, height, rows of grey bytes) of an 8-bit grey PNG without filters, as png()
    writes it, read with nothing but zlib and struct."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (8, 0, 0) and b"IEND" in chunks
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width + 1
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]


def test_each_screen_is_a_png_of_the_same_pixels_4x(world, tmp_path):
    screens = report_mod.build_report({"board": "sim"}, "", world)["trace"]["display"]
    frames = display.frames(screens)
    written = display.write_frames(frames, tmp_path / "frames")
    assert [p.name for p in written] == ["0001-0.500s.png", "0002-1.500s.png",
                                         "0003-1.980s.png"]
    for path, (_, image) in zip(written, frames, strict=True):
        width, height, rows = _decode_png(path.read_bytes())
        assert (width, height) == (512, 256)
        for y in range(64):
            for x in range(128):
                lit = display.pixel(image, x, y)
                block = {rows[4 * y + dy][4 * x + dx] for dy in range(4) for dx in range(4)}
                assert block == {255 if lit else 0}, (path.name, x, y)
    # Again into the same folder, fewer screens: the earlier run's frames go, other files stay.
    (tmp_path / "frames" / "notes.txt").write_text("mine")
    display.write_frames(frames[:1], tmp_path / "frames")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == \
        ["0001-0.500s.png", "notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        display.write_frames(frames, tmp_path / "file")


def test_laserctl_scenario_frames_writes_the_screens_and_refuses_a_file(world, tmp_path,
                                                                        monkeypatch, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(GOOD))
    ran = []

    def run(data, board, chip=False):
        ran.append(data)
        return report_mod.build_report(data, "", world)

    monkeypatch.setattr(scenario, "run", run)
    (tmp_path / "taken").write_text("")
    assert cli.main(["scenario", str(path), "--frames", str(tmp_path / "taken")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and ran == []
    out = tmp_path / "out" / "frames"
    assert cli.main(["scenario", str(path), "--frames", str(out)]) == 0
    assert "3 screens written" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["0001-0.500s.png", "0002-1.500s.png",
                                                    "0003-1.980s.png"]
    bare = tmp_path / "bare.json"  # a board without a panel has no screens to write
    bare.write_text(json.dumps(_no_panel_board(tmp_path)))
    path.write_text(json.dumps({**GOOD, "board": str(bare)}))
    assert cli.main(["scenario", str(path), "--frames", str(out)]) == 2
    assert "has no operator panel" in capsys.readouterr().err


# -- the scenario's panel inputs ------------------------------------------------------------------


def _no_panel_board(tmp_path):
    board = json.loads(paths.board_path("sim").read_text())
    del board["panel"]
    board["name"] = "sim-bare"
    return board


def test_panel_inputs_validate_on_a_board_with_a_panel():
    events = [{"at_s": 1, "input": "encoder", "value": 1},
              {"at_s": 1, "input": "encoder", "value": -100},
              {"at_s": 2, "input": "select", "value": True},
              {"at_s": 2, "input": "back", "value": False}]
    data, _ = scenario.validate({**GOOD, "events": events, "initial": {"select": False}})
    assert data["events"] == events


@pytest.mark.parametrize("event, message", [
    ({"input": "encoder", "value": 0}, "events[0].value: the encoder's detents"),
    ({"input": "encoder", "value": 101}, "within -100..100 other than 0"),
    ({"input": "encoder", "value": -101}, "events[0].value"),
    ({"input": "encoder", "value": 1.0}, "got 1.0"),
    ({"input": "encoder", "value": True}, "got True"),
    ({"input": "encoder", "value": "1"}, "events[0].value"),
    ({"input": "select", "value": 1}, "events[0].value: must be true or false"),
    ({"input": "back", "value": None}, "events[0].value: must be true or false"),
    ({"input": "knob", "value": 1}, "events[0].input: unknown input 'knob'"),
])
def test_bad_panel_inputs_name_the_field(event, message):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.validate({**GOOD, "events": [dict(event, at_s=1)]})
    assert message in str(e.value), str(e.value)


def test_panel_inputs_need_a_panel_and_the_encoder_has_no_initial_value(tmp_path):
    board = tmp_path / "bare.json"
    board.write_text(json.dumps(_no_panel_board(tmp_path)))
    for name, value in (("encoder", 1), ("select", True), ("back", True)):
        with pytest.raises(scenario.ScenarioError, match=r"events\[0\]\.input: %s is on the "
                           "operator panel, and board 'sim-bare' has none" % name):
            scenario.validate({**GOOD, "board": str(board),
                               "events": [{"at_s": 1, "input": name, "value": value}]})
    with pytest.raises(scenario.ScenarioError, match="initial.encoder"):
        scenario.validate({**GOOD, "initial": {"encoder": 1}})
    data, _ = scenario.validate({**GOOD, "board": str(board)})
    assert scenario.run(data, vdevice.load_board(str(board))[1])["display"] == []

"""`laserctl thermistor`: the engineer's check of a board's thermistor and divider."""

import json
import subprocess
import sys

from host_tools import paths


def _run(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "thermistor", *args],
                          capture_output=True, text=True, timeout=60)


def test_resistance_gives_the_temperature_the_firmware_computes():
    proc = _run("--board", "sim", "--resistance", "10000")
    assert proc.returncode == 0, proc.stderr
    assert "read_uv 1650000 -> 25.000 C" in proc.stdout
    proc = _run("--board", "sim", "--resistance", "4369")  # the TDK table's 45 C
    assert "-> 45.0" in proc.stdout


def test_resistance_outside_the_adc_range_says_so():
    proc = _run("--board", "sim", "--resistance", "400")
    assert proc.returncode == 0 and "outside the ADC's linear range" in proc.stdout
    proc = _run("--board", "sim", "--resistance", "100")  # hotter than the table's 155 C
    assert "extrapolated beyond the table's -55..155 C" in proc.stdout
    proc = _run("--board", "sim", "--resistance", "10000000")  # an open sensor, nearly
    assert "read_uv 3100000 -> OPEN" in proc.stdout  # clipped at the ADC's full scale


def test_table_every_5_c_flags_what_the_adc_cannot_read():
    proc = _run("--board", str(paths.BOARDS / "esp32-devkitc.json"))  # a path works too
    assert proc.returncode == 0, proc.stderr
    rows = {int(line.split()[0]): line for line in proc.stdout.splitlines()[3:]}
    assert sorted(rows)[:2] == [-20, -15] and all(t % 5 == 0 for t in rows)
    assert "outside the ADC's linear range" in rows[0]  # 2.53 V: above the 2.45 V linear limit
    cells = rows[25].split()
    assert cells[1:5] == ["10000.0", "1.6500", "1650000", "25.00"]
    assert "outside" not in rows[45] and abs(float(rows[45].split()[4]) - 45.0) < 0.05


def test_a_bad_board_or_resistance_exits_2(tmp_path):
    assert _run("--board", "nope").returncode == 2
    bad = tmp_path / "board.json"
    data = json.loads((paths.BOARDS / "sim.json").read_text())
    data["thermistor"]["model"] = "magic"
    bad.write_text(json.dumps(data))
    proc = _run("--board", str(bad))
    assert proc.returncode == 2 and "thermistor.model" in proc.stderr
    assert _run("--board", "sim", "--resistance", "-5").returncode == 2

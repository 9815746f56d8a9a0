"""The virtual device as a serial port: the real `mpremote` against `laserctl vdevice --pty PATH`,
as an engineer would use it against a board (exec, fs, soft-reset, repl, reset, make deploy).
mpremote needs the REPL, which only a maintenance boot has: `--maintenance` (the reset button
held through the first boot), or the PIN-guarded restart that `laserctl deploy` uses."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vdevice_rig import (
    CTRL_C,
    CTRL_D,
    CTRL_RIGHT_BRACKET,
    MPREMOTE,
    REPO,
    needs_the_interpreters,
    read_until,
    wait_for_raw_terminal,
    wait_until,
)

from host_tools import manifest

pytestmark = needs_the_interpreters

def test_exec_prints_like_a_board(maintenance_device):
    device = maintenance_device
    assert device.mpremote("exec", "print(6*7)").strip() == "42"
    assert device.mpremote("eval", "1 + 1").strip() == "2"


def test_fs_ls_shows_the_flash_with_sizes(maintenance_device):
    device = maintenance_device
    listing = device.mpremote("fs", "ls")
    sizes = dict((name, int(size)) for size, name in re.findall(r"(\d+) (\S+)", listing))
    assert sizes["main.py"] == (REPO / "firmware" / "main.py").stat().st_size
    assert sizes["boot.py"] == (REPO / "firmware" / "boot.py").stat().st_size
    assert "board.json" in sizes and "lib/" in sizes
    assert "app.py" in device.mpremote("fs", "ls", ":/lib")  # "/" is the flash, not the host


def test_fs_cp_to_the_device_and_back(maintenance_device, tmp_path):
    device = maintenance_device
    text = tmp_path / "notes.txt"
    text.write_text("line one\nline two: 6*7 = 42\n")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    device.mpremote("fs", "cp", str(text), ":notes.txt", "+", "fs", "cp", str(blob), ":blob.bin")
    assert device.mpremote("fs", "cat", ":notes.txt") == text.read_text()
    device.mpremote("fs", "cp", ":blob.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()


def test_soft_reset_clears_the_interpreter_and_exec_still_works(maintenance_device):
    device = maintenance_device
    out = device.mpremote("exec", "x = 1; print('x' in globals())", "+", "soft-reset", "+",
                          "exec", "print('x' in globals())")
    assert out.split() == ["True", "False"]
    device.mpremote("soft-reset")
    assert device.mpremote("exec", "print(6*7)").strip() == "42"


def test_repl_through_a_terminal(maintenance_device):
    """mpremote repl on a pseudo-terminal, as in a shell, in a maintenance boot: the prompt, a line
    typed, Ctrl-D for a soft reboot that runs main.py again (the reset button is released by
    now: a normal boot), then Ctrl-C is only a byte of a line, which the firmware refuses and
    runs on; Ctrl-] to leave."""
    device = maintenance_device
    master, slave = os.openpty()
    repl = subprocess.Popen([str(MPREMOTE), "connect", device.port, "repl"], cwd=REPO,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        read_until(master, b"Use Ctrl-] or Ctrl-x to exit this shell")
        wait_for_raw_terminal(master)
        os.write(master, CTRL_C)  # at the prompt: a fresh one
        read_until(master, b">>> ")
        os.write(master, b"print(6*7)\r")
        read_until(master, b"print(6*7)\r\n42\r\n>>> ")  # lines end in CRLF, as on a board
        os.write(master, CTRL_D)
        seen = read_until(master, re.compile(rb'MPY: soft reboot\r\n.*"ev": "selftest"', re.S))
        os.write(master, CTRL_C + b"\n")  # the loop runs: a line holding one byte, 0x03
        seen = read_until(master, b"byte 0x03 (Ctrl-C) at column 1", seen=seen)
        seen = read_until(master, re.compile(rb'byte 0x03.*"ev": "status"', re.S), seen=seen)
        assert b">>> " not in seen.split(b"MPY: soft reboot")[-1]  # no prompt: the loop runs on
        os.write(master, CTRL_RIGHT_BRACKET)
        assert repl.wait(timeout=10) == 0
    finally:
        if repl.poll() is None:
            repl.kill()
            repl.wait()
        os.close(master)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_deploy_to_a_blank_device(tmp_path, start_device):
    """An existing empty --root is a board with nothing but a stock MicroPython on it: `make
    deploy MPY=1` (laserctl deploy --mpy, the development path) compiles the firmware, copies it
    and the board file, and its reset starts the deployed main.py, which runs the .mpy modules."""
    flash = tmp_path / "flash"
    flash.mkdir()
    dev = start_device(root=flash)
    assert dev.mpremote("fs", "ls").split() == ["ls", ":"]  # blank
    stamp = Path(sys.prefix) / ".installed-stamp"  # -o: never reinstall the tools from a test
    make = subprocess.run(
        ["make", "-C", str(REPO), "-o", str(stamp), "deploy", "PORT=" + dev.port, "BOARD=sim",
         "MPY=1", "VENV=" + sys.prefix],
        capture_output=True, text=True, timeout=120)
    assert make.returncode == 0, make.stdout + make.stderr
    for name in ("boot.py", "main.py"):
        assert (flash / name).read_bytes() == (REPO / "firmware" / name).read_bytes()
    assert (flash / "board.json").read_bytes() == (REPO / "boards" / "sim.json").read_bytes()
    # firmware/lib's modules and the micropython-lib driver they use (the panel's ssd1306)
    modules = sorted(name[len("lib/"):-len(".py")] for name in manifest.deploy_files("sim")
                     if name.startswith("lib/"))
    assert "ssd1306" in modules
    assert sorted(p.name for p in (flash / "lib").iterdir()) == [m + ".mpy" for m in modules]
    # Its manifest, written last, matches every file. What the self-test still finds is what a
    # new board lacks: its own calibration (settings.json), which a deploy never writes: it
    # belongs to the device, not to the firmware.
    assert "self-test: emission locked: no settings stored: calibrate the device (service)" \
        in make.stdout
    assert json.loads((flash / "manifest.json").read_text())["files"]["lib/app.mpy"]
    assert dev.stop() == 0


def test_stops_cleanly_on_sigint(start_device):
    dev = start_device()
    wait_until(lambda: "Ctrl-C to stop" in dev.log(), 10, "the device's greeting")
    flash = re.search(r"flash (\S+);", dev.log()).group(1)
    children_file = Path("/proc/%d/task/%d/children" % (dev.proc.pid, dev.proc.pid))
    interpreters = [int(pid) for pid in children_file.read_text().split()] \
        if children_file.exists() else []
    assert dev.stop() == 0, dev.log()
    assert not os.path.lexists(dev.port)
    assert not os.path.exists(flash)  # the default flash is temporary
    for pid in interpreters:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_refuses_a_port_path_that_exists(tmp_path):
    taken = tmp_path / "ttyV"
    taken.write_text("not a port")
    result = subprocess.run([sys.executable, "-m", "host_tools.cli", "vdevice", "--pty",
                             str(taken)], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert taken.read_text() == "not a port"


def _request(port, request, timeout=10.0):
    """Send one request line over the serial port and return the device's reply to it."""
    os.write(port, json.dumps(request).encode() + b"\n")
    seen = read_until(port, re.compile(rb'\{"ok"[^\n]*\n|\{[^\n]*"ok": [^\n]*\n'), timeout)
    for line in seen.decode(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "ok" in obj:
            return obj
    pytest.fail("no reply in %r" % seen[-600:])


def test_the_serial_protocol_runs_on_the_port_and_the_memory_survives_resets(device):
    port = os.open(device.port, os.O_RDWR | os.O_NOCTTY)
    try:
        read_until(port, re.compile(rb'"ev": "selftest"[^\n]*\n'), 20)
        reply = _request(port, {"cmd": "select", "protocol": "knee", "id": 1})
        assert reply["ok"] is True and reply["id"] == 1, reply
        assert _request(port, {"cmd": "service", "pin": "1"})["ok"] is False  # on the journal
    finally:
        os.close(port)
    device.enter_maintenance()  # the service PIN's door to the REPL
    journal = device.mpremote("fs", "cat", ":journal.log")
    assert '"ev":"pin_wrong"' in journal
    device.mpremote("soft-reset")
    assert device.mpremote("fs", "cat", ":journal.log") == journal
    assert json.loads(device.mpremote("fs", "cat", ":treatment.json")) == {"protocol": "knee"}
    device.mpremote("fs", "rm", ":maintenance", "+", "reset")  # boots again, main.py and all
    port = os.open(device.port, os.O_RDWR | os.O_NOCTTY)
    try:
        read_until(port, re.compile(rb'"ev": "selftest"[^\n]*\n'), 20)
        status = _request(port, {"cmd": "status"})
        assert status["selected"] == {"protocol": "knee"}, status
        records = _request(port, {"cmd": "journal", "from": 1, "count": 4})["records"] + \
            _request(port, {"cmd": "journal", "from": 5, "count": 4})["records"]
    finally:
        os.close(port)
    assert [r["ev"] for r in records] == ["boot", "pin_wrong", "service_open", "service", "boot"]
    assert records[3]["action"] == "maintenance", records


def test_on_the_chip_interpreter_the_frozen_firmware_answers_and_the_flash_has_no_lib(
        start_device):
    device = start_device(chip=True)  # laserctl vdevice --chip
    port = os.open(device.port, os.O_RDWR | os.O_NOCTTY)
    try:
        line = re.compile(rb'\{[^\n]*"ev": "selftest"[^\n]*\n')
        selftest = json.loads(line.search(read_until(port, line, 20)).group())
        assert selftest["ok"] is True, selftest  # the integrity check too, without lib/
        status = _request(port, {"cmd": "status"})
        assert status["ok"] is True and status["state"] == "STANDBY", status
    finally:
        os.close(port)
    device.enter_maintenance()
    out = device.mpremote("exec", "import sys, os; print(sys.maxsize, 1.1 + 2.2, "
                          "sorted(n for n in os.listdir() if n.endswith('.py') or n == 'lib'))")
    assert out.strip() == "2147483647 3.3000002 ['boot.py', 'main.py']", out


def _laserctl_journal(port, out, pin="000000"):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "journal", "--port", port,
                           "--out", str(out), "--pin", pin], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_laserctl_journal_downloads_verifies_and_finds_a_tampered_record(device, tmp_path):
    out = tmp_path / "journal.csv"
    for _ in range(3):  # wrong PINs: refused, and on record
        result = _laserctl_journal(device.port, out, pin="1111")
        assert result.returncode == 2 and "wrong PIN" in result.stderr, result.stderr
    assert not out.exists()
    result = _laserctl_journal(device.port, out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hash chain intact" in result.stdout
    with open(out, newline="") as f:
        header = f.readline()
        rows = list(csv.DictReader(f))
    # The device it came from, as status names it (the virtual device's unique id).
    assert header.startswith("# device: device 240ac4000001, version ")
    assert rows[0]["device"] == "240ac4000001"  # and the boot record names it too
    # More records than one reply's page (4): the download pages through them all. The first
    # connection set the device's clock (it did not know the time): on record, and every record
    # after it carries the time; the boot before it says the time was unknown.
    assert [row["ev"] for row in rows] == ["boot", "clock", "pin_wrong", "pin_wrong",
                                           "pin_wrong", "service_open"]
    assert [row["n"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[0]["utc_s"] == "" and rows[1]["from_s"] == ""
    assert all(abs(int(row["utc_s"]) - time.time()) < 60 for row in rows[1:])
    assert {row["boot"] for row in rows} == {"1"}
    # One byte of the first record changed on the flash (from a maintenance boot: the REPL),
    # then the device restarted into its firmware.
    device.enter_maintenance()
    device.mpremote("exec", "s = open('journal.log').read(); open('journal.log', 'w')"
                            ".write(s.replace('\"boot\":1', '\"boot\":7', 1))")
    device.mpremote("fs", "rm", ":maintenance", "+", "reset")
    result = _laserctl_journal(device.port, tmp_path / "journal.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "line 1: record n=1 fails its hash (altered)" in result.stdout
    saved = json.loads((tmp_path / "journal.json").read_text())
    assert saved["records"][0]["boot"] == 7  # written as found: the evidence is kept
    assert saved["device"]["device"] == "240ac4000001" and saved["device"]["version"]

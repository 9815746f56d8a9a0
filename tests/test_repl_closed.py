"""While the firmware runs, its serial port carries the JSON protocol and nothing else (issue 14,
point 5; docs/threat-model.md). On the virtual device over its port, as a user's mpremote or an
attacker with the USB cable sees it: Ctrl-C (0x03), Ctrl-A and Python lines, Ctrl-D, Ctrl-E, long
binary garbage, sent while a treatment emits, neither stop the loop nor reach Python: status keeps
answering, no file changes, the light stays exactly as the pedal says, and mpremote fails with a
clear error instead of a REPL. A boot flooded with Ctrl-C still runs the firmware. Only a
maintenance boot (`laserctl vdevice --maintenance`: the reset button held) gives mpremote its
REPL, and a reset ends it. A device whose loop cannot run halts, answering every line with the
reason, and never falls through to the REPL. Every wait is bounded."""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from vdevice_rig import MPREMOTE, REPO, needs_the_interpreters, wait_until

from host_tools import vdevice
from host_tools.serial_link import SerialLink
from host_tools.virtual_panel import VirtualPanel

pytestmark = needs_the_interpreters

_, SIM = vdevice.load_board("sim")
ENABLE_PIN = SIM["laser"]["enable_pin"]
TREATMENT = {"power_w": 5.0, "dose_j_cm2": 40.0, "area_cm2": 25.0}  # 200 s of light: time enough
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
# What a REPL user, mpremote or an attacker sends: Ctrl-C alone and mid-line, the raw REPL with
# Python that drives the laser's enable pin and writes the flash, soft reset, paste mode, friendly
# REPL, and binary garbage longer than a request may be.
PYTHON = b"import machine; machine.Pin(%d, machine.Pin.OUT, value=1)" % ENABLE_PIN
WRITE = b"open('pwned', 'w').write('x'); open('treatment.json', 'w').write('{}')"
ATTACKS = (CTRL_C, b'{"cmd": "st' + CTRL_C + b'atus"}', CTRL_C + CTRL_C + b"\r" + CTRL_A,
           CTRL_A + PYTHON + b"\r" + CTRL_D, CTRL_A + WRITE + b"\r" + CTRL_D,
           CTRL_E + PYTHON + b"\r" + CTRL_D, CTRL_B, CTRL_D,
           bytes(range(256)).replace(b"\n", b"") * 4)
MPREMOTE_TIMEOUT_S = 40  # it gives up on the raw REPL after 10 s of waiting


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start(tmp_path):
    """Start `laserctl vdevice --pty PORT --root ROOT --panel UDP [EXTRA...]` on a fresh image
    with TREATMENT selected; returns (port, panel UDP port, root). Stopped however a test ends."""
    started = []

    def start_device(*extra):
        root = tmp_path / "flash"
        vdevice.make_image(root, "sim", TREATMENT)
        port, panel_port = str(tmp_path / "ttyV"), free_udp_port()
        log = open(tmp_path / "device.log", "wb")  # noqa: SIM115 - closed with the device
        proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "vdevice", "--pty", port, "--root",
             str(root), "--panel", str(panel_port), *extra], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT)
        started.append((proc, log))
        wait_until(lambda: os.path.islink(port) or proc.poll() is not None, 15, "the port")
        assert proc.poll() is None, (tmp_path / "device.log").read_text()
        return port, panel_port, root

    yield start_device
    for proc, log in started:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def files_of(root):
    """The flash, but the journal and the boot count (the firmware's own records of the
    session)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("journal.") and p.name != "boot_count"}


def wait_for_light(panel, lit, timeout_s=3.0):
    """The panel's snapshot once the plant's light is on (`lit`) or off; fails after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = panel.snapshot()
        if (snap["optical_w"] > 0) == lit:
            return snap
        assert time.monotonic() < deadline, "the light did not go %s: %r" % (
            "on" if lit else "off", snap)


def start_emitting(link, panel):
    for name, value in (("interlock", True), ("key", True), ("footswitch", False)):
        panel.set(name, value)
    assert link.call("arm")["state"] == "READY"
    deadline = time.monotonic() + 5  # the emission delay (2 s) first: the pedal is then seen
    while link.call("status")["state"] == "READY":
        panel.set("footswitch", False)
        panel.set("footswitch", True)
        assert time.monotonic() < deadline, "no emission"
        time.sleep(0.3)
    return wait_for_light(panel, True)


def mpremote(port, *args):
    return subprocess.run([str(MPREMOTE), "connect", port, *args], cwd=REPO,
                          capture_output=True, text=True, errors="replace",
                          timeout=MPREMOTE_TIMEOUT_S)


def test_repl_bytes_and_mpremote_while_emitting_neither_stop_the_loop_nor_reach_python(start):
    port, panel_port, root = start()
    lines = []
    with VirtualPanel(panel_port) as panel, SerialLink(port, on_line=lines.append) as link:
        link.wait_ready()
        lit = start_emitting(link, panel)
        power_w = lit["optical_w"]
        assert power_w == pytest.approx(TREATMENT["power_w"], rel=0.01)
        before = files_of(root)
        for attack in ATTACKS:
            lines.clear()
            link._port.write(attack + b"\n")
            status = link.call("status")  # answered: the loop runs, and reads requests
            assert status["state"] == "EMITTING" and status["fault"] is None, (attack, status)
            snap = panel.snapshot()
            assert snap["optical_w"] == pytest.approx(power_w) and snap["led"] == 1, snap
            refusals = [line for line in lines if '"ok": false' in line]
            assert len(refusals) == 1 and ("byte 0x" in refusals[0] or "line too long" in
                                           refusals[0]), (attack, refusals)
    # mpremote as a user types it: it cannot get the raw REPL, and says so within its timeout.
    started = time.monotonic()
    with VirtualPanel(panel_port) as panel:
        result = mpremote(port, "exec", PYTHON.decode() + "; " + WRITE.decode())
        lights = [s["optical_w"] for s in panel.poll()]
    assert result.returncode != 0 and "could not enter raw repl" in result.stderr, result
    assert time.monotonic() - started < MPREMOTE_TIMEOUT_S
    assert lights and min(lights) == pytest.approx(power_w), "the light changed under mpremote"
    with VirtualPanel(panel_port) as panel, SerialLink(port) as link:
        assert link.call("status")["state"] == "EMITTING"  # mpremote's leftovers: one line
        panel.set("footswitch", False)  # the pedal rules the light, as before the attacks
        wait_for_light(panel, False, 0.5)
        assert link.call("status")["state"] == "PAUSED"
    assert files_of(root) == before  # nothing written: not pwned, not the treatment


def test_a_boot_flooded_with_ctrl_c_still_runs_the_firmware(start):
    port, _, _ = start()
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    seen, deadline, booted_at = b"", time.monotonic() + 30, None
    try:
        while booted_at is None or time.monotonic() < booted_at + 1.0:
            assert time.monotonic() < deadline, "no boot within 30 s: %r" % seen[-600:]
            with contextlib.suppress(BlockingIOError):
                os.write(fd, CTRL_C * 8)
            if select.select([fd], [], [], 0.01)[0]:
                seen += os.read(fd, 65536)
            if booted_at is None and b'"ev": "selftest"' in seen:
                booted_at = time.monotonic()  # and a second more of Ctrl-C into the loop
    finally:
        os.close(fd)
    for words in (b">>> ", b"raw REPL", b"KeyboardInterrupt", b"Traceback"):
        assert words not in seen, (words, seen[-800:])
    with SerialLink(port) as link:
        assert link.wait_ready(10)["state"] == "STANDBY"


def test_only_a_maintenance_boot_gives_mpremote_the_repl_and_a_reset_ends_it(start):
    port, _, root = start("--maintenance")
    assert mpremote(port, "exec", "print(6 * 7)").stdout.strip() == "42"
    notes = root.parent / "notes.txt"
    notes.write_text("serviced\n")
    result = mpremote(port, "fs", "cp", str(notes), ":notes.txt", "+", "reset")
    assert result.returncode == 0, result
    assert (root / "notes.txt").read_text() == "serviced\n"
    with SerialLink(port) as link:  # the button was released: the firmware runs again, and
        assert link.wait_ready(20)["state"] == "STANDBY"  # with it the protocol, not the REPL


# -- the safe halt: the loop cannot run, and the port still does not become a REPL ---------------


def _run(tmp_path, prepare, events, initial=None, until_s=3):
    """The virtual device in virtual time on a flash that `prepare(root)` damaged, with serial
    `events` ([(at_s, line)]); returns the JSON lines it wrote and its raw output."""
    root = tmp_path / "device"
    vdevice.make_image(root, "sim", TREATMENT)
    prepare(root)
    config = vdevice.sim_config(SIM, until_s=until_s, initial=initial or {}, world_board=SIM,
                                events=[{"at_s": t, "serial": line} for t, line in events])
    serial_in, serial_out = os.pipe()
    config["serial_fd"] = serial_out
    config_path = tmp_path / "vdev.json"
    config_path.write_text(json.dumps(config))
    argv, env, cwd = vdevice.command(root, config_path)
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdin=serial_in, pass_fds=(serial_out,),
                              capture_output=True, timeout=60)
    finally:
        os.close(serial_in)
        os.close(serial_out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(b"{")]
    assert all(b < 128 for line in lines for b in line), lines  # ASCII, as every line
    return [json.loads(line) for line in lines], proc.stdout


def _cut_board_file(root):
    text = (root / "board.json").read_text()
    (root / "board.json").write_text(text[:len(text) // 2])  # a write cut short


def _remove_a_module(root):
    (root / "lib" / "ticks.py").unlink()


def test_a_device_whose_loop_cannot_run_halts_answering_the_reason_never_the_repl(tmp_path):
    lines, out = _run(tmp_path, _cut_board_file,
                      [(1.0, '{"cmd": "status", "id": 5}'), (1.5, "\x03"), (2.0, "\x01")])
    halted = [line for line in lines if line.get("ev") == "halted"]
    assert len(halted) == 1 and halted[0]["repl"] is False
    assert halted[0]["reason"].startswith("BoardError: board file board.json: not valid JSON")
    replies = [line for line in lines if "ok" in line]
    assert [r["ok"] for r in replies] == [False] * 3 and replies[0]["id"] == 5
    assert replies[0]["error"] == "halted: " + halted[0]["reason"]
    assert b"Traceback" not in out and not any(line.get("ev") == "boot" for line in lines)
    # A missing module: the board file is fine, so the outputs are created off again from it.
    lines, out = _run(tmp_path / "2", _remove_a_module, [(1.0, '{"cmd": "status"}')])
    assert [line["reason"] for line in lines if line.get("ev") == "halted"] == [
        "ImportError: no module named 'ticks'"]
    assert [line["error"] for line in lines if "ok" in line] == [
        "halted: ImportError: no module named 'ticks'"]


def test_a_halted_device_with_its_reset_button_held_gives_the_repl(tmp_path):
    lines, _ = _run(tmp_path, _remove_a_module, [], initial={"reset": True})
    assert [(line["ev"], line["why"], line["halted"]) for line in lines] == [
        ("maintenance", "reset button held at boot", "ImportError: no module named 'ticks'")]

"""`laserctl console` (host_tools/console.py) against the virtual device's serial port
(`laserctl vdevice --pty`), driven as a script drives it: commands piped in, one per line."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
import vdevice_rig

from host_tools.console import event_text, status_text
from host_tools.serial_link import PIN_ENV, SerialLink

REPO = vdevice_rig.REPO
pytestmark = vdevice_rig.needs_the_interpreters


class Console:
    """`laserctl console --port PORT OPTIONS...`, its stdin and stdout piped.
    `env`: extra environment variables ($LASERCTL_PIN is never inherited)."""

    def __init__(self, port, *options, env=None):
        environ = {k: v for k, v in os.environ.items() if k != PIN_ENV}
        environ.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "console", "--port", port, *options],
            cwd=REPO, env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.out = b""

    def send(self, *lines):
        self.proc.stdin.write("".join(line + "\n" for line in lines).encode())
        self.proc.stdin.flush()

    def wait_for(self, text, timeout=15.0):
        """Read the output until `text` appears; returns all of it so far, as text."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select(
                    [self.proc.stdout], [], [], 0)[0]:
                pytest.fail("no %r in the console's output: %s" % (text, self.out.decode()))
            if select.select([self.proc.stdout], [], [], left)[0]:
                self.out += os.read(self.proc.stdout.fileno(), 4096)
        return self.out.decode()

    def finish(self, timeout=30.0):
        """Close stdin (EOF) and wait for the end: (exit status, all the output, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, (self.out + out).decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def console():
    """Start consoles; each one still running when the test ends is killed."""
    started = []

    def start(port, *options, env=None):
        started.append(Console(port, *options, env=env))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def ready(device):
    """The device's status once its firmware answers, over a link of the test's own."""
    with SerialLink(device.port) as link:
        return link.wait_ready()


@pytest.fixture
def device(tmp_path):
    """A virtual device with a new flash in tmp_path/flash, its firmware answering; stopped when
    the test ends, however it ends."""
    dev = vdevice_rig.Device(tmp_path, root=tmp_path / "flash")
    try:
        dev.wait_for_port()
        ready(dev)
        yield dev
    finally:
        dev.stop()


def test_a_piped_session_shows_the_status_errors_and_journal_and_changes_the_device(
        device, console, tmp_path):
    log = tmp_path / "session.jsonl"
    con = console(device.port, "--log", str(log))
    con.send("status", "list", "select knee 5", "bogus", "select knee five", "help select", "arm",
             "service", "1234",  # a wrong PIN, asked for and read from the next line
             "service", "000000", "journal 3", "logout", "# done")
    out = con.wait_for("> # done")
    # The console goes on reading and logging between commands: status lines come every 250 ms.
    deadline = time.monotonic() + 5
    while log.read_text().count('"ev": "status"') < 2:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    con.send("quit")
    status, out, err = con.finish()
    assert status == 1, out + err  # some commands failed, as a script should learn
    assert err == ""
    lines = out.splitlines()
    # A fresh virtual device does not know the time: the console sets its clock on connecting.
    assert re.fullmatch(r"the device's clock was unknown: set to this computer's "
                        r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", lines[0]), out
    assert re.fullmatch(r"status: STANDBY \| 0\.00 W \| 0\.0/- J \| 2\d\.\d °C NORMAL \| "
                        r"alarm NONE \| fault none \| service session closed", lines[1]), out
    assert "  knee" in lines and "  tendinopathy" in lines
    assert "selected protocol=knee skin_type=5: 8.0 W, 1000.0 J, 125.0 s" in lines
    assert any(line.startswith("status: STANDBY | 0.00 W | 0.0/1000.0 J")
               and line.endswith("| service session closed | preset protocol=knee skin_type=5")
               for line in lines), out
    assert lines[lines.index("> bogus") + 1].startswith("usage: unknown command 'bogus'; the "
                                                        "commands: status, list, select,")
    assert lines[lines.index("> select knee five") + 1] == "usage: select NAME [SKIN_TYPE]"
    assert lines[lines.index("> help select") + 1].startswith("  select NAME [SKIN_TYPE]  select")
    assert "error: arm refused: key switch off" in lines  # the device's own words
    assert "* refused: key switch off" in lines  # and its event line
    assert "error: service: wrong PIN (4 tries left)" in lines
    assert "1234" not in out and "000000" not in out  # PINs are never echoed
    assert "service session open (closes after 300 s without a service command)" in lines
    assert any(line.endswith("| service session OPEN | preset protocol=knee skin_type=5")
               for line in lines), out
    journal = [line for line in lines[lines.index("> journal 3") + 1:lines.index("> logout")]
               if not line.startswith("* ")]  # an event line may come in between
    # The last three records: the clock the console set, the wrong PIN, the session; each says
    # which device, when (the wall clock now known), which boot and how long after it.
    assert [re.sub(r"up_s=\d+ utc_s=\d+$", "WHEN", line) for line in journal] == [
        "#2 clock boot=1 device=240ac4000001 from_s=null WHEN",
        "#3 pin_wrong boot=1 device=240ac4000001 failures=1 WHEN",
        "#4 service_open boot=1 device=240ac4000001 WHEN"], journal
    assert '"ev": "status"' not in out  # the periodic status lines are not printed
    # The device: the selection is on its flash, the session closed.
    selected = {"protocol": "knee", "skin_type": 5}
    assert json.loads((tmp_path / "flash" / "treatment.json").read_text()) == selected
    after = ready(device)
    assert after["selected"] == selected and after["service"] is False
    # The log: every line JSON, as received; the replies show that exactly the typed commands
    # (and status polls, and the clock read and set on connecting) were sent: nothing for
    # `bogus`, the bad select or help.
    received = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(isinstance(obj, dict) for obj in received)
    replies = [obj for obj in received if "ev" not in obj]
    assert [r["cmd"] for r in replies] == [
        "status", "clock", "clock", "status", "list", "select", "status", "arm", "service",
        "service", "status", "journal", "logout", "status"]
    assert [r["id"] for r in replies] == list(range(1, 15))
    assert sum(obj.get("ev") == "status" and "t_ms" in obj for obj in received) >= 2


def test_the_pin_from_the_environment_limits_a_new_pin_restart_and_logout_at_eof(
        device, console):
    con = console(device.port, env={PIN_ENV: "000000"})
    con.send("service", "limits max_power_w=12", "limits", "limits power=3",
             "pin", "4321", "4321", "restart",
             "service", "4321", "status")  # the old PIN is forgotten: asked, from the next line
    status, out, err = con.finish()  # EOF, with the session open
    assert status == 1, out + err  # the bad `limits`
    lines = out.splitlines()
    assert "saved: max_energy_j=10000 max_power_w=12; applies after a restart " \
           '({"cmd": "restart"})' in lines
    assert any("| LOCKED: settings changed: restart the device to apply them |" in line
               for line in lines), out
    assert "limits: max_energy_j=10000 max_power_w=12 (calibrated on 2026-11-01, due on " \
           "2027-11-01)" in lines
    assert lines[lines.index("> limits power=3") + 1].startswith("usage: limits [max_power_w=W]")
    assert "PIN changed (applies now)" in lines
    after_restart = lines[lines.index("restarting ..."):]
    assert any(line.startswith("* boot: firmware ") for line in after_restart), out
    assert after_restart.count("service session open (closes after 300 s without a service "
                               "command)") == 1  # the new PIN opened it
    assert "LOCKED" not in "\n".join(after_restart)  # the new limits applied through a boot
    assert lines[-1] == "logged out of the service session"
    after = ready(device)
    assert after["service"] is False
    assert after["settings"]["limits"]["max_power_w"] == 12


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_logs_out_of_the_service_session(device, console, signum):
    con = console(device.port, "--pin", "000000")
    con.send("service")
    con.wait_for("| service session OPEN")
    con.proc.send_signal(signum)
    status, out, err = con.finish()
    assert out.splitlines()[-2:] == ["interrupted", "logged out of the service session"], out
    assert status == 0, err
    assert ready(device)["service"] is False


def test_a_device_that_stops_answering_gets_a_message_and_the_console_goes_on(
        device, console):
    con = console(device.port)
    con.wait_for("type help for the commands")
    os.kill(device.proc.pid, signal.SIGSTOP)  # the port stays open, nothing comes through
    try:
        con.send("status")
        out = con.wait_for("no answer: ")
    finally:
        os.kill(device.proc.pid, signal.SIGCONT)
    assert "no answer: no reply to 'status' within 5 s: is the firmware running" in out
    con.send("status", "quit")
    status, out, err = con.finish()
    assert status == 1, err  # the unanswered command
    assert out.splitlines()[-2].startswith("status: STANDBY |"), out  # answered again


def test_a_device_silent_from_the_start_exits_2(device):
    os.kill(device.proc.pid, signal.SIGSTOP)
    try:  # the console's wait for the firmware shortened from 20 s to 2 s
        result = subprocess.run(
            [sys.executable, "-c", "import argparse, sys; from host_tools import console "
             "as c; c.READY_TIMEOUT_S = 2.0; sys.exit(c.main(argparse.Namespace("
             "port=sys.argv[1], pin=None, log=None)))", device.port],
            cwd=REPO, input="status\n", capture_output=True, text=True, timeout=30)
    finally:
        os.kill(device.proc.pid, signal.SIGCONT)
    assert result.returncode == 2, result.stdout + result.stderr
    # At once, what it waits for and what to do; at the end, the same.
    port = device.port
    assert result.stderr.splitlines() == [
        "waiting up to 2 s for the firmware on %s to answer (it may be booting); at the REPL "
        "or in a maintenance boot it never will: `mpremote connect %s reset` restarts it"
        % (port, port),
        "laserctl console: no answer from the firmware on %s within 2 s: it is not running its "
        "loop (at the REPL, in a maintenance boot, or on another port?). `mpremote connect %s "
        "reset` restarts it; a maintenance boot ends when its flag file is removed "
        "(docs/troubleshooting.md)" % (port, port)]


def test_a_port_that_cannot_be_opened_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "console", "--port", str(tmp_path / "ttyNone")],
        cwd=REPO, input="status\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("laserctl console: cannot open %s" % (tmp_path / "ttyNone"))
    assert result.stderr.count("\n") == 1


def test_event_lines_read_as_one_liners():
    assert event_text({"ev": "status", "t_ms": 5, "state": "STANDBY"}) is None
    assert event_text({"ev": "fault", "t_ms": 5, "code": "ESTOP"}) == "FAULT ESTOP"
    assert event_text({"ev": "session", "t_ms": 9, "end": "DISARMED", "delivered_j": 8.078,
                       "target_j": 1000.0, "emitting_ms": 1010}) == \
        "session ended: DISARMED, 8.078 of 1000.0 J, 1010 ms of light"
    assert event_text({"ev": "error", "error": "x"}) == "device error: x"
    assert event_text({"ev": "selftest", "ok": False, "problem": "manifest"}) == \
        "self-test FAILED: manifest"
    assert event_text({"ev": "new", "a": 1}) == 'event: {"ev": "new", "a": 1}'


def test_the_status_line_says_when_the_calibration_is_overdue():
    reply = {"state": "STANDBY", "power_w": 0.0, "settings": {"due_on": "2025-01-31"}}
    assert "CALIBRATION OVERDUE since 2025-01-31" in status_text(reply, today="2026-11-21")
    assert "OVERDUE" not in status_text(reply, today="2025-01-31")  # due that day: not yet

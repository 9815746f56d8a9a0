"""The operator console (`laserctl run`) in a real pseudo-terminal: keys in, screen out.

Each test starts the console as a user would, with the pty as its controlling terminal, and
drives the real firmware on the real MicroPython interpreter in virtual time (--speed 20): a 2 s
emission warning is 0.1 s of wall clock. Nothing sleeps: every step polls the screen with a
timeout.
"""

import codecs
import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT_S = 8.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(),
                                reason="finds the interpreter's process through /proc")


def _own_terminal():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the controlling terminal, as in a shell


class Terminal:
    """`laserctl run` in a 100x24 pseudo-terminal; reads what it writes as plain text."""

    def __init__(self, tmp_path, *args):
        self.tmp_path = tmp_path
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.saved_mode = termios.tcgetattr(self.slave)
        env = dict(os.environ, TERM="xterm", TMPDIR=str(tmp_path))
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "run", *args],
            stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=REPO, env=env,
            start_new_session=True, preexec_fn=_own_terminal)
        self.raw = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def _read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: nothing has the terminal open any more
                return
            self.raw += self._decoder.decode(data)

    def mark(self):
        return len(self.raw)

    def text(self, since=0):
        return ANSI.sub("", self.raw[since:])

    def expect(self, pattern, since=0, timeout=TIMEOUT_S):
        """Wait until `pattern` appears on the screen after `since`; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.text(since))
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%r not on the screen within %g s; it shows:\n%s"
                                     % (pattern, timeout, self.text()[-2500:]))
            self._read(min(left, 0.1))

    def send(self, keys):
        mark = self.mark()
        os.write(self.master, keys.encode())
        return mark

    def wait(self, timeout=TIMEOUT_S):
        """The console's exit code; keeps reading so that it never blocks on a full terminal."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.05)
        self._read(0)
        return self.proc.wait(timeout=0.1)

    def interpreters(self):
        """Processes whose working directory is in this test's temporary folder: the virtual
        device's interpreter runs in its image there."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(self.tmp_path)):
                found.append(int(entry.name))
        return found

    def close(self):
        for pid in [self.proc.pid] + self.interpreters():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def console(tmp_path):
    terminals = []

    def start(*args):
        term = Terminal(tmp_path, *args)
        terminals.append(term)
        return term

    yield start
    for term in terminals:
        term.close()


def _assert_closed_cleanly(term):
    assert term.wait() == 0, term.text()[-2000:]
    assert "virtual device stopped" in term.text()
    assert term.interpreters() == [], "the MicroPython interpreter is still running"
    assert not list(term.tmp_path.glob("laserctl-run-*")), "the device image was left behind"
    assert termios.tcgetattr(term.slave) == term.saved_mode, "the terminal was not restored"
    assert term.raw.rstrip().endswith("virtual device stopped")
    assert "\x1b[?25h" in term.raw  # the cursor is shown again


# 200 J at 5 W: 40 s of emission, 2 s of wall clock, time enough to pause it on the way.
PROTOCOL = '{"power_w": 5.0, "dose_j_cm2": 8.0, "area_cm2": 25.0}'


def test_a_treatment_given_by_keys(console):
    term = console("--speed", "20", "--protocol", PROTOCOL)
    term.expect(r"state STANDBY")
    term.expect(r"k key  i interlock  e e-stop  a arm  r reset  s silence/ack  "
                r"f/space footswitch  q quit")
    assert len(term.interpreters()) == 1

    term.expect(r"key ON", term.send("k"))
    mark = term.send("a")
    term.expect(r"STANDBY -> READY", mark)
    term.expect(r" READY\s+permit no", mark)
    term.expect(r"request off, withheld: footswitch up", mark)  # the supervisor's reason
    term.expect(r"LED ON", mark)

    # Hold the footswitch: the firmware starts emitting once the 2 s warning is over.
    mark = term.send("f")
    term.expect(r"footswitch HELD", mark)
    term.expect(r"READY -> EMITTING", mark)
    power = term.expect(r"EMITTING\s+permit yes\s+power (\d+\.\d+) W", mark)
    assert float(power.group(1)) == pytest.approx(5.0)
    term.expect(r"request on\s", mark)
    term.expect(r"dose (\d+\.\d)/200\.0 J", mark)

    # Release: paused, dose kept; press again: it finishes the dose by itself.
    mark = term.send(" ")
    paused = term.expect(r"EMITTING -> PAUSED\s+(\d+\.\d)/200\.0 J", mark)
    assert 0 < float(paused.group(1)) < 200
    term.expect(r"footswitch up", mark)
    mark = term.send(" ")
    term.expect(r"PAUSED -> EMITTING", mark)
    done = term.expect(r"EMITTING -> COMPLETE\s+(\d+\.\d)/200\.0 J 100%", mark)
    # Within a tick's energy, or a few more when a loaded host stalls the real-time clock.
    assert float(done.group(1)) == pytest.approx(200.0, abs=1.0)
    term.expect(r"COMPLETE\s+permit \w+\s+power 0\.00 W", mark)

    mark = term.send("a")  # acknowledge
    term.expect(r"COMPLETE -> STANDBY", mark)

    term.send("q")
    _assert_closed_cleanly(term)
    assert "closed (quit)" in term.text()


@pytest.mark.parametrize("how", ["key", "signal"])
def test_ctrl_c_quits_cleanly(console, how):
    term = console("--speed", "20")
    term.expect(r"state STANDBY")
    term.expect(r"key ON", term.send("k"))
    assert len(term.interpreters()) == 1
    if how == "key":
        term.send("\x03")  # the console's raw mode delivers Ctrl-C as a key
    else:
        os.killpg(term.proc.pid, signal.SIGINT)  # what the terminal would do in cooked mode
    _assert_closed_cleanly(term)
    assert "virtual device switched off in STANDBY: no power, no light" in term.text(), term.text()


def test_the_firmware_refuses_to_arm_without_the_key(console):
    term = console("--speed", "20")
    term.expect(r"state STANDBY")
    term.expect(r"arm refused: key switch off", term.send("a"))
    term.send("q")
    assert term.wait() == 0


def test_bad_options_are_refused_before_the_terminal_is_touched(console):
    term = console("--protocol", '{"power_w": 99, "dose_j_cm2": 4, "area_cm2": 25}')
    assert term.wait() == 2
    term.expect(r"laserctl run: --protocol: protocol\.power_w")
    assert termios.tcgetattr(term.slave) == term.saved_mode
    assert term.interpreters() == []

    term = console("--speed", "0")
    assert term.wait() == 2
    term.expect(r"--speed must be > 0")


def test_without_a_terminal_it_says_so():
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", "run"], cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr

"""The virtual device as the tests drive it from outside: `laserctl vdevice --pty PORT` started and
stopped like an engineer would (Device), and waiting on its port or its output with a deadline.
Shared by the tests of mpremote, deploy, calibrate, the console and the closed REPL; the fixtures
that start devices are in tests/conftest.py."""

import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MPREMOTE = BIN / "mpremote"
CTRL_C, CTRL_D, CTRL_RIGHT_BRACKET = b"\x03", b"\x04", b"\x1d"

needs_the_interpreters = pytest.mark.skipif(
    not (MPREMOTE.exists() and (BIN / "micropython").exists()),
    reason="mpremote and micropython are installed with the project (make test)")


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.01)


def read_until(fd, needle, timeout=10.0, seen=b""):
    """Read fd until `needle` (bytes or compiled regex) appears; return everything read."""
    deadline = time.monotonic() + timeout
    found = needle.search if hasattr(needle, "search") else lambda data: needle in data
    while not found(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail("no %r within %.0f s; last output: %r" % (needle, timeout, seen[-600:]))
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed
                pytest.fail("output ended before %r; last output: %r" % (needle, seen[-600:]))
    return seen


class Device:
    """`laserctl vdevice --pty PORT [--root ROOT] [--maintenance]`, started and stopped like an
    engineer would."""

    def __init__(self, tmp_path, root=None, maintenance=False, chip=False):
        self.port = str(tmp_path / "ttyV")
        argv = [sys.executable, "-m", "host_tools.cli", "vdevice", "--pty", self.port]
        if root is not None:
            argv += ["--root", str(root)]
        if maintenance:
            argv.append("--maintenance")
        if chip:
            argv.append("--chip")
        self.log_path = tmp_path / "device.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def wait_for_port(self):
        wait_until(lambda: os.path.islink(self.port) or self.proc.poll() is not None, 15,
                   "the device's port")
        assert self.proc.poll() is None, self.log()

    def log(self):
        return self.log_path.read_text()

    def mpremote(self, *args, timeout=30):
        result = subprocess.run([str(MPREMOTE), "connect", self.port, *args], cwd=REPO,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, "mpremote %s: %s%s" % (args, result.stdout, result.stderr)
        return result.stdout

    def enter_maintenance(self):
        """Restart the running firmware into a maintenance boot, as `laserctl deploy` does: a
        service session (the factory PIN), then restart with the maintenance flag."""
        from host_tools import deploy

        assert deploy.enter_maintenance(self.port, "000000"), "the firmware did not answer"

    def stop(self):
        """SIGINT, as Ctrl-C in its terminal; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for_raw_terminal(master):
    """Wait until the program on the pseudo-terminal has made it raw, as `mpremote repl` does just
    after its greeting: typed before that, a Ctrl-C is the line discipline's (echoed as "^C",
    never read by the program)."""
    typed_as_is = termios.ICANON | termios.ECHO | termios.ISIG
    wait_until(lambda: not termios.tcgetattr(master)[3] & typed_as_is, 10,
               "the terminal in raw mode")

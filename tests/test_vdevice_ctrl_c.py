"""The virtual device's Ctrl-C (host_tools/vdevice/pty.py): whether a 0x03 from the port becomes
SIGINT is decided while the interpreter cannot change its mind. Otherwise a supervisor descheduled
between its look at the interpreter and its signal sends SIGINT to an interpreter that has turned
the interrupt off since (as boot.py and main.py do first thing), and the default action of SIGINT
ends the process: a power-on reset where the chip has a Ctrl-C, a maintenance boot lost."""

import os
import re
import signal
import subprocess
import sys

from vdevice_rig import REPO, needs_the_interpreters, read_until, wait_until

pytestmark = needs_the_interpreters

# Runs with the interrupt on (as the board's script runner runs boot.py) until the file "off"
# appears, then turns it off, as the firmware's boot.py does first thing, and reads a byte.
BOOT = """\
import micropython, os, sys
try:
    print("interrupt on")
    while True:
        try:
            os.stat("off")
            break
        except OSError:
            pass
    micropython.kbd_intr(-1)
    print("interrupt off, read %r" % sys.stdin.read(1))
except KeyboardInterrupt:
    print("KeyboardInterrupt in boot.py")
"""

# `laserctl vdevice` whose every look at the interpreter is followed by a pause, as a supervisor
# preempted on a loaded machine: it creates "off", then lets the interpreter run on until it has
# acted on it (or for 0.5 s if it cannot run).
SLOW_SUPERVISOR = """\
import os, sys, time
from host_tools import cli
from host_tools.vdevice import pty as pty_device

look = pty_device.PtyDevice._interpreter_runs_code

def look_then_pause(self):
    runs_code = look(self)
    open(os.path.join(self.root, "off"), "w").close()
    deadline = time.monotonic() + 0.5
    while look(self) == runs_code and time.monotonic() < deadline:
        time.sleep(0.01)
    return runs_code

pty_device.PtyDevice._interpreter_runs_code = look_then_pause
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_ctrl_c_as_the_interrupt_turns_off_never_ends_the_interpreter(tmp_path):
    flash, port = tmp_path / "flash", str(tmp_path / "ttyV")
    flash.mkdir()
    (flash / "boot.py").write_text(BOOT)  # no main.py: the REPL after boot.py
    with open(tmp_path / "device.log", "wb") as log:
        device = subprocess.Popen([sys.executable, "-c", SLOW_SUPERVISOR, "vdevice", "--pty", port,
                                   "--root", str(flash)], cwd=REPO, stdout=log, stderr=log)
    try:
        wait_until(lambda: os.path.islink(port) or device.poll() is not None, 15, "the port")
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            seen = read_until(fd, b"interrupt on\r\n")
            os.write(fd, b"\x03")
            seen = read_until(fd, re.compile(rb"interrupt off, read .*\n|KeyboardInterrupt in "
                                             rb"boot.py|ended by signal"), seen=seen)
        finally:
            os.close(fd)
    finally:
        device.send_signal(signal.SIGINT)
        device.wait(timeout=10)
    assert b"ended by signal" not in seen, seen  # the old supervisor's power-on reset
    # The Ctrl-C came as the interrupt turned off: either side of that is right, as on the chip.
    assert b"interrupt off, read '\\x03'" in seen or b"KeyboardInterrupt in boot.py" in seen, seen

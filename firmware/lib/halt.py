# The safe halt: where main.py goes when the control loop cannot run (an invalid board file, a
# module that cannot be imported, anything that escapes startup.main). It never returns to main.py,
# so the board never falls through to its REPL: the serial port keeps carrying JSON only, and
# every line received is answered with the reason. The outputs are off: gated again from the
# board file if it can be read, else left to the laser lines' hardware pull-downs. The watchdog
# is not fed: if the loop had started it, it resets the chip, and the next boot starts in FAULT.
#
# The exception is a maintenance boot: the maintenance flag file on the flash (written by the
# PIN-guarded service restart, or by laserctl deploy), or the reset button held at boot, which can
# be read when the board file can. Then the halt says why and returns, and main.py leaves the
# REPL to the technician who asked for it. A bad board file leaves only the flag: it is what says
# which pin the button is on.
import json
import select
import sys
import time

from fields import is_whole
from flash import MAINTENANCE_FLAG
from link import LineReader, dumps, send_line

_POLL_MS = 10


def reason_of(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def maintenance_why(hardware):
    """Why this is a maintenance boot (as startup.maintenance_requested, which may be what failed
    to import), or None. `hardware`: the hw.Hardware the board file gave, or None."""
    try:
        with open(MAINTENANCE_FLAG):
            return "flag file %s" % MAINTENANCE_FLAG
    except OSError:
        pass
    try:
        if hardware is not None and hardware.maintenance_button_held():
            return "reset button held at boot"
    except Exception:  # noqa: BLE001 - an unreadable button is not held
        pass
    return None


class Halt:
    """Answers every request line with `reason`; `read_byte` as for commands.py, `write` takes
    each line (default: straight to the port: no loop runs here to keep on time)."""

    def __init__(self, reason, read_byte, write=send_line):
        self.reason = reason
        self.lines = LineReader(read_byte)
        self._write = write

    def announce(self):
        self._write(dumps({"ev": "halted", "reason": self.reason, "repl": False}))

    def poll(self):
        """Answer the next complete line, if one is waiting; returns whether one was."""
        line = self.lines.poll()
        if line is None:
            return False
        reply = {"ok": False, "error": "halted: %s" % self.reason, "halted": self.reason}
        if isinstance(line, bytes):
            try:
                request = json.loads(line)
            except (ValueError, UnicodeError):
                request = None
            ident = request.get("id") if isinstance(request, dict) else None
            # The id back, so that a host tool matches the refusal to its request and shows why.
            if is_whole(ident) or (isinstance(ident, str) and len(ident) <= 32):
                reply["id"] = ident
        self._write(dumps(reply))
        return True


class _Stdin:
    """The serial port's bytes, as hw.Hardware.read_serial_byte reads them (hw.py may be what
    failed)."""

    def __init__(self):
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._byte = bytearray(1)

    def read_byte(self):
        for _, events in self._poll.ipoll(0):
            if events & select.POLLIN and sys.stdin.buffer.readinto(self._byte) == 1:
                return self._byte[0]
        return -1


def _hardware():
    """The outputs created off again from the board file; None if it cannot be read (then the
    laser lines' hardware pull-downs hold them off)."""
    try:
        import board
        import hw

        return hw.Hardware(board.load("board.json"))
    except Exception:  # noqa: BLE001 - whatever failed, the pull-downs hold the lines
        return None


def forever(exc):
    """Halt because of `exc` (on the device only: it never returns, but for a maintenance boot):
    outputs off, the reason on the port, then every line answered with it."""
    hardware = _hardware()
    reason = reason_of(exc)
    why = maintenance_why(hardware)
    if why is not None:
        send_line(dumps({"ev": "maintenance", "why": why, "halted": reason,
                         "leave": "fix the cause, remove the flag file (mpremote rm :%s), "
                                  "release the button, reset" % MAINTENANCE_FLAG}))
        return
    halt = Halt(reason, _Stdin().read_byte)
    halt.announce()
    while True:
        if not halt.poll():
            time.sleep_ms(_POLL_MS)

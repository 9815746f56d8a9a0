"""Shared: the host's end of the serial protocol (docs/serial.md): one JSON request per line out,
the device's reply to it back, with the device's event lines (status, state, ...) skipped or
kept.

    with SerialLink("/dev/ttyUSB0") as link:
        link.call("status")                   # -> the reply dict; DeviceError if "ok" is false
        link.call("service", pin="000000")
        link.poll()                           # -> the event lines waiting, without a request

Works with a board and with the virtual device's port (`laserctl vdevice --pty PATH`)."""

import errno
import getpass
import json
import os
import sys
import time

import serial

from host_tools import device_lines

BAUD = 115200
PIN_ENV = "LASERCTL_PIN"  # the service PIN for scripts; otherwise it is asked for
CLOCK_SLACK_S = 2  # a device clock this close to the computer's is left alone (the firmware's too)


def service_pin(given=None):
    """The service PIN: `given` (a --pin option), else $LASERCTL_PIN, else asked for (hidden) on
    a terminal. Without any of them, DeviceError says how to give it."""
    pin = given or os.environ.get(PIN_ENV)
    if pin:
        return pin
    how = ("the service PIN is needed: give --pin PIN, set $%s (make deploy: PIN=...), or run "
           "it from a terminal to be asked" % PIN_ENV)
    if not sys.stdin.isatty():
        raise DeviceError(how)
    try:
        return getpass.getpass("service PIN: ")
    except EOFError:
        raise DeviceError(how) from None
MAX_PARTIAL = 4096  # bytes kept of a line without its end: the device's lines are far shorter


def _to_stderr(text):
    print(text, file=sys.stderr, flush=True)


class DeviceError(Exception):
    """The device refused a request, or did not answer; the message is for the user."""


class SerialLink:
    """The port at 115200 baud. `timeout_s`: how long a request waits for its reply. `on_line`:
    called with the text of every JSON object line received (events and replies, without the line
    end), before anything else is done with it, e.g. to keep a log."""

    def __init__(self, port, timeout_s=5.0, on_line=None):
        try:
            # exclusive: a second tool on the same port would steal the replies (POSIX lock)
            self._port = serial.Serial(port, BAUD, timeout=0.1, exclusive=True)
        except (serial.SerialException, OSError) as e:
            if getattr(e, "errno", None) == errno.EAGAIN or "exclusively lock" in str(e):
                raise DeviceError("cannot open %s: another program has it open (a serial "
                                  "console, mpremote, another laserctl): close that first"
                                  % port) from e
            raise DeviceError("cannot open %s: %s" % (port, e)) from e
        self.timeout_s = timeout_s
        self.events = []  # the event lines seen while waiting for replies (or in poll)
        self.on_line = on_line
        self._next_id = 1
        self._partial = b""  # a line's start that arrived without its end (yet)
        # A line end first: it closes whatever another program left unfinished in the device's
        # line buffer (mpremote's Ctrl-C and Ctrl-A, which the firmware takes as bytes of a line),
        # so that the first request is a line of its own. The device refuses that line, which no
        # request waits for.
        try:
            self._port.write(b"\n")
        except (serial.SerialException, OSError) as e:
            self._port.close()
            raise DeviceError("cannot write to %s: %s" % (port, e)) from e

    def close(self):
        self._port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, cmd, **fields):
        """Send one request and return the device's reply to it (ok or not)."""
        ident = self._next_id
        self._next_id += 1
        fields.update(cmd=cmd, id=ident)
        self._port.write(json.dumps(fields).encode() + b"\n")
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            obj = self._read_line()
            # "ok" too: a REPL echoes the request line itself, id and all
            if obj is not None and "ok" in obj and obj.get("id") == ident:
                if obj["ok"] is not True and not isinstance(obj.get("error"), str):
                    obj["error"] = "refused, without a reason: %s" % json.dumps(obj)
                return obj
        raise DeviceError("no reply to %r within %.0f s: is the firmware running (not at the "
                          "REPL, not in a maintenance boot)?" % (cmd, self.timeout_s))

    def wait_event(self, ev, timeout_s):
        """Read until an event line `ev` arrives (e.g. "boot" after a restart); return it, or
        None after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.poll():
                if event.get("ev") == ev:
                    return event
            time.sleep(0.05)
        return None

    def poll(self):
        """Read the lines already waiting, without sending anything; return the event lines among
        them (also kept in `events`). A late reply, to a request that timed out, is dropped."""
        start = len(self.events)
        while self._port.in_waiting:
            self._read_line()
        return self.events[start:]

    def _read_line(self):
        """One line from the port (waiting at most the port's 0.1 s): the JSON object it holds,
        or None. Events go to `events`; a line cut by the read's timeout is kept until its end
        arrives, so that no line is lost or split."""
        chunk = self._port.readline()
        if not chunk.endswith(b"\n"):
            self._partial = (self._partial + chunk)[-MAX_PARTIAL:]  # REPL prompts never end
            return None
        line, self._partial = self._partial + chunk, b""
        obj = device_lines.parse(line)  # never raises, whatever the bytes
        if not isinstance(obj, dict):
            return None  # the REPL's banner, noise
        if self.on_line is not None:
            self.on_line(device_lines.text(line).rstrip("\r\n"))
        if "ev" in obj:
            self.events.append(obj)
        return obj

    def call(self, cmd, **fields):
        """request(), raising DeviceError with the device's own words if it refused."""
        reply = self.request(cmd, **fields)
        if reply["ok"] is not True:
            raise DeviceError(reply["error"])
        return reply

    def sync_clock(self):
        """Set the device's wall clock to this computer's (UTC) if it does not know the time or
        is more than CLOCK_SLACK_S off (docs/serial.md, *The clock*); what every tool does once
        the firmware answers. Returns a line saying what was done, or None if nothing was.
        During a session the device refuses: its clock waits for the next connection."""
        reply = self.request("clock")
        if reply.get("ok") is not True:
            return None  # a firmware without the request: nothing to set
        now_s = int(time.time())
        device_s = reply["utc_s"]
        if device_s is not None and abs(device_s - now_s) <= CLOCK_SLACK_S:
            return None
        was = "unknown" if device_s is None else "%+d s off" % (device_s - now_s)
        reply = self.request("clock", utc_s=now_s)
        if reply.get("ok") is not True:
            return "the device's clock (%s) was not set: %s" % (was, reply.get("error"))
        return "the device's clock was %s: set to this computer's (%s UTC)" % (
            was, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now_s)))

    def wait_ready(self, timeout_s=20.0, waiting=None):
        """Wait until the firmware answers (it may be booting); returns its status. When its first
        request goes unanswered, `waiting` (default: a line on stderr) is told at once what is
        awaited and what to do; after `timeout_s`, DeviceError says it again."""
        deadline = time.monotonic() + timeout_s
        saved, self.timeout_s = self.timeout_s, 1.0
        port = self._port.port
        told = False
        try:
            while True:
                try:
                    return self.call("status")
                except DeviceError as e:
                    # A halted firmware (firmware/lib/halt.py) stays halted: no use waiting.
                    if str(e).startswith("halted: "):
                        raise
                    if time.monotonic() > deadline:
                        raise DeviceError(
                            "no answer from the firmware on %s within %.0f s: it is not running "
                            "its loop (at the REPL, in a maintenance boot, or on another port?). "
                            "`mpremote connect %s reset` restarts it; a maintenance boot ends "
                            "when its flag file is removed (docs/troubleshooting.md)"
                            % (port, timeout_s, port)) from None
                    if not told:
                        told = True
                        (waiting or _to_stderr)(
                            "waiting up to %.0f s for the firmware on %s to answer (it may be "
                            "booting); at the REPL or in a maintenance boot it never will: "
                            "`mpremote connect %s reset` restarts it" % (timeout_s, port, port))
        finally:
            self.timeout_s = saved

"""The host's end of the serial protocol (docs/serial.md): one JSON request per line out, the
device's reply to it back, with the device's event lines (status, state, ...) skipped or kept.

    with SerialLink("/dev/ttyUSB0") as link:
        link.call("status")                   # -> the reply dict; DeviceError if "ok" is false
        link.call("service", pin="000000")

Works with a board and with the virtual device's port (`laserctl vdevice --pty PATH`)."""

import json
import time

import serial

BAUD = 115200


class DeviceError(Exception):
    """The device refused a request, or did not answer; the message is for the user."""


class SerialLink:
    def __init__(self, port, timeout_s=5.0):
        try:
            self._port = serial.Serial(port, BAUD, timeout=0.1)
        except (serial.SerialException, OSError) as e:
            raise DeviceError("cannot open %s: %s" % (port, e)) from e
        self.timeout_s = timeout_s
        self.events = []  # the event lines seen while waiting for replies
        self._next_id = 1

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
            line = self._port.readline()
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a partial line, the REPL's banner, noise
            if not isinstance(obj, dict):
                continue
            if "ev" in obj:
                self.events.append(obj)
            elif obj.get("id") == ident:
                return obj
        raise DeviceError("no reply to %r within %.0f s: is the firmware running (not at the "
                          "REPL, not in a maintenance boot)?" % (cmd, self.timeout_s))

    def call(self, cmd, **fields):
        """request(), raising DeviceError with the device's own words if it refused."""
        reply = self.request(cmd, **fields)
        if not reply["ok"]:
            raise DeviceError(reply["error"])
        return reply

    def wait_ready(self, timeout_s=20.0):
        """Wait until the firmware answers (it may be booting); returns its status."""
        deadline = time.monotonic() + timeout_s
        saved, self.timeout_s = self.timeout_s, 1.0
        try:
            while True:
                try:
                    return self.call("status")
                except DeviceError:
                    if time.monotonic() > deadline:
                        raise
        finally:
            self.timeout_s = saved

"""The virtual device's panel: the technician's hands and a perfect power meter, on the virtual
device only (`laserctl vdevice --panel UDP_PORT`). A board has real switches and a real meter.

The simulated world (host_tools/vdevice/mpy/simworld.py, `_open_control`) sends `{"hello": 1}`
and then a snapshot every 100 ms of virtual time to 127.0.0.1:UDP_PORT, and takes
`{"input": NAME, "value": bool}` for the operator inputs (key, interlock, estop, footswitch, arm,
reset, ack). A snapshot's `optical_w` is the plant's true optical power.

    with VirtualPanel(port) as panel:
        panel.set("key", True)
        panel.snapshot()["optical_w"]

The panel may be opened before or after the device starts, and every reset of the device starts
a new world from a new address: the latest sender of any datagram is the world."""

import json
import select
import socket
import time

SET_TIMEOUT_S = 3.0
RESEND_EVERY_S = 0.5  # a datagram sent to a world that has just reset is lost: send it again


class PanelError(Exception):
    """The virtual device's world does not answer, or refused an input; for the user."""


class VirtualPanel:
    """The UDP end the world reports to. `port`: the UDP port on 127.0.0.1 to bind (the one
    given to `laserctl vdevice --panel`)."""

    def __init__(self, port):
        self.port = port
        self.world = None  # the address the latest datagram came from
        self.latest = None  # the latest snapshot
        self.errors = []  # the world's {"error": ...} answers, in its words
        self._new = []  # snapshots not yet handed out by poll()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError as e:
            self._sock.close()
            raise PanelError("cannot bind UDP 127.0.0.1:%d for the virtual panel: %s"
                             % (port, e)) from e
        self._sock.setblocking(False)

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _receive(self, wait_s):
        """Take every datagram waiting, waiting up to `wait_s` seconds for the first one;
        returns how many snapshots arrived."""
        count = 0
        while select.select([self._sock], [], [], wait_s)[0]:
            wait_s = 0
            try:
                data, sender = self._sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                continue  # an ICMP echo of a datagram to a world that has gone: nothing to read
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            self.world = sender
            if "error" in msg:
                self.errors.append(str(msg["error"]))
            elif "optical_w" in msg:
                self.latest = msg
                self._new.append(msg)
                count += 1
        return count

    def poll(self):
        """The snapshots received since the last poll (oldest first), without waiting."""
        self._receive(0)
        new, self._new = self._new, []
        return new

    def snapshot(self, timeout_s=2.0):
        """A snapshot received after this call: the world's present state. `timeout_s`: how
        long to wait for it. PanelError if none comes."""
        self._receive(0)  # what is waiting is older than the call
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PanelError("the virtual device sends nothing to UDP 127.0.0.1:%d: is it "
                                 "running with --panel %d?" % (self.port, self.port))
            if self._receive(left):
                return self.latest

    def set(self, name, value, timeout_s=SET_TIMEOUT_S):
        """Set the operator input `name` (key, interlock, estop, footswitch, arm, reset, ack) to
        `value` (True: on, closed, pressed) and wait until a snapshot shows it; returns that
        snapshot. `timeout_s`: how long to keep trying. PanelError if the world never shows it
        or refuses the input."""
        value = bool(value)
        deadline = time.monotonic() + timeout_s
        errors_before = len(self.errors)
        while time.monotonic() < deadline:
            if self.world is None:
                self._receive(min(RESEND_EVERY_S, max(deadline - time.monotonic(), 0)))
                continue
            self._sock.sendto(json.dumps({"input": name, "value": value}).encode(), self.world)
            resend_at = time.monotonic() + RESEND_EVERY_S
            while time.monotonic() < min(resend_at, deadline):
                self._receive(max(min(resend_at, deadline) - time.monotonic(), 0))
                if len(self.errors) > errors_before:
                    raise PanelError("the virtual device refused input %r: %s"
                                     % (name, self.errors[-1]))
                shown = (self.latest or {}).get("inputs", {}).get(name)
                if shown == value:
                    return self.latest
        raise PanelError("the virtual device did not take input %s=%s within %.0f s (is it "
                         "running with --panel %d?)" % (name, value, timeout_s, self.port))

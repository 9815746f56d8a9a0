"""Shared: the one client of the virtual device's panel: the operator's hands on its switches
and a perfect power meter, over the world's UDP control channel, on the virtual device only. A
board has real switches and a real meter. `laserctl run` drives its world through it,
`laserctl calibrate --virtual-panel` the world of `laserctl vdevice --panel UDP_PORT`.

The simulated world (host_tools/vdevice/mpy/simworld.py, `_open_control`) sends `{"hello": 1}`
and then a snapshot every 100 ms of virtual time to 127.0.0.1:UDP_PORT (the plant's true optical
power `optical_w`, the true temperatures, the input levels the device sees, the emission LED and
buzzer, the panel's display), `{"error": ...}` for an input it refused, and takes `{"input":
NAME, "value": bool}` for the operator inputs (key, interlock, estop, footswitch, arm, reset,
ack; on a board with a panel select and back) and `{"input": "encoder", "value": detents}`.

    with VirtualPanel(port) as panel:
        panel.set("key", True)              # and wait until a snapshot shows it
        panel.snapshot()["optical_w"]
        panel.send("encoder", 2)            # at once, not waited for
        panel.messages()                    # every message since the last call

The panel may be opened before or after the device starts, and every reset of the device starts
a new world from a new address: the latest sender of any datagram is the world."""

import collections
import json
import select
import socket
import time

SET_TIMEOUT_S = 3.0
RESEND_EVERY_S = 0.5  # a datagram sent to a world that has just reset is lost: send it again
KEPT = 1000  # messages kept for poll() and messages(): 100 s of snapshots, if nobody reads them
DATAGRAM_BYTES = 65536  # a snapshot with the panel's display is about 2.5 KB


class PanelError(Exception):
    """The virtual device's world does not answer, or refused an input; for the user."""


class VirtualPanel:
    """The UDP end the world reports to. `port`: the UDP port on 127.0.0.1 to bind (the one
    given to `laserctl vdevice --panel`); 0 for any free one (then `port` is the one bound, to
    give to the world's configuration as its control_port)."""

    def __init__(self, port=0):
        self.world = None  # the address the latest datagram came from
        self.latest = None  # the latest snapshot
        self.errors = []  # the world's {"error": ...} answers, in its words
        self._new = collections.deque(maxlen=KEPT)  # snapshots not yet handed out by poll()
        self._messages = collections.deque(maxlen=KEPT)  # every message, for messages()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError as e:
            self._sock.close()
            raise PanelError("cannot bind UDP 127.0.0.1:%d for the virtual panel: %s"
                             % (port, e)) from e
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]

    def fileno(self):
        """The socket's: a panel can wait in select() beside other files."""
        return self._sock.fileno()

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
                data, sender = self._sock.recvfrom(DATAGRAM_BYTES)
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
            self._messages.append(msg)
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
        new = list(self._new)
        self._new.clear()
        return new

    def messages(self):
        """Every message received since the last call (oldest first: hellos, snapshots, errors),
        without waiting."""
        self._receive(0)
        new = list(self._messages)
        self._messages.clear()
        return new

    def send(self, name, value):
        """Drive input `name` at once, without waiting to see it: a level (True/False), or for
        "encoder" the detents turned now (a whole number, clockwise positive). False if no world
        has been heard from yet, or the datagram could not go."""
        if self.world is None:
            return False
        value = int(value) if name == "encoder" else bool(value)
        try:
            self._sock.sendto(json.dumps({"input": name, "value": value}).encode(), self.world)
        except OSError:
            return False
        return True

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
            self.send(name, value)
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

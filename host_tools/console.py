"""The operator console (`laserctl run`, `make run`): the virtual device in real time, driven from
the keyboard like the device's front panel.

The unmodified firmware runs on the real MicroPython interpreter in a temporary device image. The
console reads the firmware's JSON lines (its serial port) for the state, power, dose and measured
temperature, and talks to the simulated world over a local UDP control channel: it drives the
operator inputs (key switch, interlock, e-stop, footswitch, arm and reset buttons) and receives
snapshots of the plant (optical power, true heatsink temperature, emission LED, buzzer, and the
input levels the device actually sees).

The screen is plain ANSI: a log of firmware events scrolls up, and the live status lines and the
help line stay at the bottom, redrawn in place. Standard library only.
"""

import contextlib
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from host_tools import device_lines, vdevice
from host_tools.terminal import RawTerminal, Screen, color_wanted

HELP = ("k key", "i interlock", "e e-stop", "a arm", "r reset", "s silence/ack",
        "f/space footswitch", "q quit")
HISTORY = 500  # log lines kept to rebuild the screen after a resize or Ctrl-L
MAX_SPEED = 100.0
TOGGLES = ("key", "interlock", "estop", "footswitch")
BUTTONS = ("arm", "reset", "ack")
KEYS = {"k": "key", "i": "interlock", "e": "estop", "f": "footswitch", " ": "footswitch",
        "a": "arm", "r": "reset", "s": "ack"}
QUIT_KEYS = ("q", "Q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
REDRAW_KEY = "\x0c"  # Ctrl-L
PRESS_MIN_S = 0.15  # a button press lasts at least this long (wall clock) ...
PRESS_SEEN_S = 0.05  # ... and this long after the device reported it down
PRESS_GIVE_UP_S = 2.0  # release anyway if the device never reports the press
REDRAW_S = 0.05
STOP_WAIT_S = 1.0  # for the firmware's last lines to be read once its power is off

# SGR styles
_BOLD, _DIM, _RED, _GREEN, _YELLOW = "1", "2", "31", "32", "33"
_STATE_STYLE = {"READY": "1;30;43", "EMITTING": "1;37;41", "PAUSED": "1;33",
                "COMPLETE": "1;30;42", "FAULT": "1;37;41", "BOOT": _DIM}
_LOG_STYLE = {"READY": "1;33", "EMITTING": "1;31", "PAUSED": "33", "COMPLETE": "1;32",
              "FAULT": "1;31"}


class ConsoleError(Exception):
    """A bad option or an unusable board/protocol: the message is for the user."""


# -- the virtual device --------------------------------------------------------------------------


class Device:
    """The interpreter running the firmware in real time, and the world's control channel."""

    def __init__(self, board_name, protocol, ambient_c, speed):
        _, board = vdevice.load_board(board_name)
        check_protocol(protocol, board)
        vdevice.sim_config(board)  # raises if the board cannot run on the virtual device
        self.board = board
        self.tmp = tempfile.TemporaryDirectory(prefix="laserctl-run-")
        self.proc = None
        self.sock = None
        try:
            tmp = Path(self.tmp.name)
            root = tmp / "device"
            vdevice.make_image(root, board_name, protocol)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.setblocking(False)
            config = vdevice.sim_config(board, realtime=True, speed=speed, ambient_c=ambient_c,
                                        control_port=self.sock.getsockname()[1])
            config_path = tmp / "vdev.json"
            config_path.write_text(json.dumps(config))
            argv, env, cwd = vdevice.command(root, config_path)
            # Its own session: the terminal's signals are the console's to handle, not its.
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except BaseException:
            self.close()
            raise
        self.world = None  # the world's address, from its hello
        self._partial = {self.proc.stdout.fileno(): b"", self.proc.stderr.fileno(): b""}
        for fd in self._partial:
            os.set_blocking(fd, False)

    def pipes(self):
        """The firmware's stdout and stderr, until each reaches its end."""
        return list(self._partial)

    def read_lines(self, fd):
        """Complete lines from the firmware's stdout/stderr; (lines, eof)."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return [], False
        if not data:
            rest = self._partial.pop(fd)
            return ([rest.decode("utf-8", "replace")] if rest.strip() else []), True
        data = self._partial[fd] + data
        *lines, self._partial[fd] = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines], False

    def is_stdout(self, fd):
        return fd == self.proc.stdout.fileno()

    def datagrams(self):
        msgs = []
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return msgs
            except OSError:
                return msgs  # e.g. ECONNREFUSED echoes on some systems: nothing to read
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if isinstance(msg, dict):
                if "hello" in msg:
                    self.world = addr
                msgs.append(msg)

    def send(self, name, value):
        if self.world is None:
            return False
        try:
            self.sock.sendto(json.dumps({"input": name, "value": bool(value)}).encode(),
                             self.world)
        except OSError:
            return False
        return True

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def switch_off(self):
        """The power switch: the interpreter ends, and with it the world and its light. The
        firmware cannot be stopped any other way: a Ctrl-C on its serial port is only a byte
        (docs/threat-model.md)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self):
        """Kill the interpreter (if still running), close the channel, remove the image."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self.sock is not None:
            self.sock.close()
        self.tmp.cleanup()


def check_protocol(protocol, board):
    """Validate the treatment with the firmware's own code, as the device will at boot."""
    try:
        vdevice.check_treatment(protocol, board)
    except ValueError as e:
        raise ConsoleError("--protocol: %s" % e) from e


# -- the console ---------------------------------------------------------------------------------


class Console:
    def __init__(self, device, screen, speed):
        self.device = device
        self.screen = screen
        self.speed = speed
        self.status = {}  # the firmware's latest state/status line
        self.plant = {}  # the world's latest snapshot
        self.wanted = {name: name == "interlock" for name in TOGGLES}  # the world's initial
        self.pressed = {}  # button -> [down_at, seen_at or None]
        self.log = []
        self.history = deque(maxlen=HISTORY)
        self.rebuild = False  # clear the screen and draw again from the history
        self.quit = None  # why the console stops
        self.dirty = True
        self.last_draw = 0.0
        self.state = None

    # -- input -----------------------------------------------------------------------------------

    def key(self, ch):
        if ch in QUIT_KEYS:
            self.quit = "Ctrl-C" if ch == "\x03" else "quit"
        elif ch == REDRAW_KEY:
            self.rebuild = True
        else:
            name = KEYS.get(ch.lower())
            if name in TOGGLES:
                self.toggle(name)
            elif name in BUTTONS:
                self.press(name)
        self.dirty = True

    def toggle(self, name):
        value = not self.level(name)
        self.wanted[name] = value
        if self.device.world is not None:
            self.device.send(name, value)
        self.note("> %s %s" % (_LABEL[name], _level_word(name, value).lower()), _DIM)

    def press(self, name):
        if self.device.world is None:
            self.note("%s: the device is still starting" % name, _YELLOW)
            return
        if name in self.pressed:
            return
        self.device.send(name, True)
        self.pressed[name] = [time.monotonic(), None]
        self.note("> %s pressed" % name, _DIM)

    def release_buttons(self, now):
        for name, (down_at, seen_at) in list(self.pressed.items()):
            held = now - down_at
            if (seen_at is not None and held >= PRESS_MIN_S and now - seen_at >= PRESS_SEEN_S) \
                    or held >= PRESS_GIVE_UP_S:
                if seen_at is None:
                    self.note("%s: the device did not see the press" % name, _RED)
                self.device.send(name, False)
                del self.pressed[name]
                self.dirty = True

    def level(self, name):
        """What the device sees on an input (its snapshot), or what was asked before the first."""
        inputs = self.plant.get("inputs")
        if isinstance(inputs, dict) and name in inputs and name in TOGGLES:
            return bool(inputs[name])
        return self.wanted.get(name, False)

    # -- the device's output ---------------------------------------------------------------------

    def datagram(self, msg):
        if "hello" in msg:
            for name in TOGGLES:  # whatever was set before the device was listening
                self.device.send(name, self.wanted[name])
            self.note("virtual device started (%s)" % ("real time" if self.speed == 1
                      else "virtual time x%g" % self.speed), _DIM)
        elif "error" in msg:
            self.note("control channel: %s" % msg["error"], _RED)
        elif "t_s" in msg:
            self.plant = msg
            inputs = msg.get("inputs") or {}
            for name, entry in self.pressed.items():
                if entry[1] is None and inputs.get(name):
                    entry[1] = time.monotonic()
        self.dirty = True

    def firmware_line(self, line):
        ev = _json_object(line)
        if not isinstance(ev, dict) or "ev" not in ev:
            if line.strip():
                self.note("device: " + line.strip(), _DIM)
            return
        kind = ev["ev"]
        if kind in ("state", "status", "halt"):
            self.status = ev
            self.dirty = True
        t = _t_s(ev)
        if kind == "state":
            state = ev.get("state")
            if self.state is None:
                self.note("state %s" % state, None, t)
            else:
                text = "%s -> %s" % (self.state, state)
                if state in ("PAUSED", "COMPLETE") or self.state in ("EMITTING", "PAUSED"):
                    text += "   %s" % _dose_text(ev)
                self.note(text, _LOG_STYLE.get(state), t)
            self.state = state
        elif kind == "boot":
            self.note("firmware %s booted on board %s (loop %s ms)"
                      % (ev.get("version"), ev.get("board"), ev.get("loop_ms")), None, t)
        elif kind == "fault":
            self.note("FAULT %s" % ev.get("code"), _RED + ";1", t)
        elif kind == "refused":
            self.note("arm refused: %s" % ev.get("reason"), _YELLOW, t)
        elif kind == "session":
            self.note("session ended: %s   %s" % (ev.get("end"), _dose_text(ev)),
                      _LOG_STYLE.get("COMPLETE") if ev.get("end") == "COMPLETE" else _YELLOW, t)
        elif kind == "thermal":
            level = {"thermal": ev.get("level"), "derate_pct": ev.get("derate_pct")}
            self.note("heatsink %s C: %s" % (_num(ev.get("temp_c"), "%.1f"), _thermal_text(level)),
                      _THERMAL_STYLE.get(ev.get("level")), t)
        elif kind == "error":
            where = " (%s)" % ev["where"] if ev.get("where") else ""
            self.note("firmware error%s: %s" % (where, ev.get("error")), _RED, t)
        elif kind == "halt":
            self.note("firmware loop stopped in %s, laser off   %s"
                      % (ev.get("state"), _dose_text(ev)), _YELLOW, t)
        elif kind == "halted":
            self.note("firmware HALTED, no control loop: %s" % ev.get("reason"), _RED + ";1", t)
        elif kind != "status":
            self.note("device: " + line.strip(), _DIM, t)

    def stderr_line(self, line):
        if line.strip():
            self.note("device stderr: " + line.rstrip(), _RED)

    def note(self, text, sgr=None, t_s=None):
        if t_s is None:
            t_s = self.plant.get("t_s")
        stamp = "%8.2f s  " % t_s if isinstance(t_s, (int, float)) else " " * 12
        self.log.append((stamp + text, sgr))
        self.history.append((stamp + text, sgr))
        self.dirty = True

    # -- drawing ---------------------------------------------------------------------------------

    def live_lines(self):
        s, p, scr = self.status, self.plant, self.screen
        width = scr.width()
        state = s.get("state") or "starting"
        if state == "FAULT" and s.get("fault"):
            state = "FAULT %s" % s["fault"]
        status = [(" %-8s " % state, _STATE_STYLE.get(s.get("state"))),
                  ("permit %s" % ("yes" if s.get("permit") else "no"), None),
                  ("power %s W" % _num(s.get("power_w"), "%.2f"),
                   _RED + ";1" if s.get("power_w") else None),
                  ("dose " + _dose_text(s), None),
                  # The state machine's request and the supervisor's verdict: a veto is red.
                  ("request %s%s" % ("on" if s.get("request") else "off",
                                     "" if s.get("permit") or not s.get("why")
                                     else ", withheld: %s" % s["why"]),
                   _RED + ";1" if s.get("request") and not s.get("permit") else None),
                  ("temp %s C (plant %s C)" % (_num(s.get("temp_c"), "%.1f"),
                                             _num(p.get("heatsink_c"), "%.1f")),
                   _RED + ";1" if s.get("temp_c", 0) is None else None),
                  (_thermal_text(s), _THERMAL_STYLE.get(s.get("thermal"))),
                  (_alarm_text(s), _ALARM_STYLE.get(s.get("alarm"))),
                  ("LED %s" % _on(p.get("led")), _RED + ";1" if p.get("led") else None),
                  ("buzzer %s" % _on(p.get("buzzer")), _YELLOW + ";1" if p.get("buzzer") else None)]
        inputs = []
        for name in TOGGLES:
            value = self.level(name)
            word = _level_word(name, value)
            alarm = value if name != "interlock" else not value
            inputs.append(("%s %s" % (_LABEL[name], word),
                           ("7;1" if name == "footswitch" else _RED + ";1") if alarm else None))
        for name in BUTTONS:
            if name in self.pressed:
                inputs.append(("%s DOWN" % name, "7"))
        t = p.get("t_s")
        inputs.append(("t %s s%s" % (_num(t, "%.1f"), " (x%g)" % self.speed
                                     if self.speed != 1 else ""), _DIM))
        return (scr.wrap(status, width) + scr.wrap(inputs, width)
                + scr.wrap([(text, _DIM) for text in HELP], width))

    def redraw(self, force=False):
        now = time.monotonic()
        if not force and (not self.dirty or now - self.last_draw < REDRAW_S):
            return
        log, self.log = self.log, []
        live = self.live_lines()
        if self.rebuild:
            self.rebuild = False
            self.screen.clear()
            room = self.screen.size()[1] - len(live)
            log = list(self.history)[-room:] if room > 0 else []
        self.screen.draw(live, log)
        self.dirty = False
        self.last_draw = now

    # -- the loop --------------------------------------------------------------------------------

    def run(self, stdin_fd):
        """Until q, Ctrl-C, a signal, or the device's end. Returns the interpreter's exit code if
        it ended by itself, else None."""
        dev = self.device
        while self.quit is None:
            fds = dev.pipes() + [dev.sock, stdin_fd]
            try:
                ready, _, _ = select.select(fds, [], [], REDRAW_S)
            except InterruptedError:
                ready = []
            for item in ready:
                if item == stdin_fd:
                    self.keys(stdin_fd)
                elif item is dev.sock:
                    for msg in dev.datagrams():
                        self.datagram(msg)
                else:
                    self.pipe(item)
            self.release_buttons(time.monotonic())
            if not dev.running() and not dev.pipes():  # it ended, and all it said is shown
                self.redraw(force=True)
                return dev.proc.returncode
            self.redraw()
        return None

    def keys(self, fd):
        try:
            data = os.read(fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:  # the terminal went away
            self.quit = "terminal closed"
            return
        for ch in data.decode("latin-1"):
            if self.quit is None:
                self.key(ch)

    def pipe(self, fd):
        lines, _ = self.device.read_lines(fd)
        handle = self.firmware_line if self.device.is_stdout(fd) else self.stderr_line
        for line in lines:
            handle(line)

    def stop(self):
        """Switch the device off and show the lines it wrote before; the caller cleans up."""
        dev = self.device
        dev.switch_off()
        self.note("virtual device switched off in %s: no power, no light" % (self.state or "BOOT"),
                  _YELLOW)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and dev.pipes():
            ready, _, _ = select.select(dev.pipes(), [], [], 0.05)
            for fd in ready:
                self.pipe(fd)
        self.redraw(force=True)


_LABEL = {"key": "key", "interlock": "interlock", "estop": "e-stop", "footswitch": "footswitch"}


def _level_word(name, value):
    if name == "key":
        return "ON" if value else "off"
    if name == "interlock":
        return "closed" if value else "OPEN"
    if name == "estop":
        return "PRESSED" if value else "off"
    return "HELD" if value else "up"


def _json_object(line):
    """The JSON object on a line (device_lines.parse: safe to show whatever the bytes); a line
    cut short (the rest of it never printed) may be followed on the same line by the next one."""
    start = line.find("{")
    while start >= 0:
        obj = device_lines.parse(line[start:])
        if obj is not None:
            return obj
        start = line.find("{", start + 1)
    return None


def _on(value):
    return "ON" if value else "off"


def _num(value, fmt):
    return fmt % value if isinstance(value, (int, float)) and not isinstance(value, bool) else "--"


def _t_s(ev):
    t = ev.get("t_ms")
    return t / 1000.0 if isinstance(t, (int, float)) else None


_THERMAL_STYLE = {"WARNING": _YELLOW + ";1", "DERATE": _RED + ";1"}
_ALARM_STYLE = {"HIGH": "1;37;41", "MEDIUM": _YELLOW + ";1", "LOW": _GREEN}


def _alarm_text(s):
    alarm = s.get("alarm") or "NONE"
    if alarm == "NONE":
        return "alarm -"
    return "alarm %s%s" % (alarm, " (silenced)" if s.get("silenced") else "")


def _thermal_text(s):
    """The firmware's thermal level, with the power it still allows while derating."""
    level = s.get("thermal") or "-"
    if level == "DERATE":
        return "thermal DERATE %s%%" % s.get("derate_pct")
    return "thermal %s" % level


def _dose_text(s):
    delivered, target = s.get("delivered_j"), s.get("target_j")
    if not isinstance(delivered, (int, float)):
        return "--/-- J"
    if not isinstance(target, (int, float)) or target <= 0:
        return "%.1f J (no treatment)" % delivered
    return "%.1f/%.1f J %.0f%%" % (delivered, target, 100.0 * delivered / target)


# -- entry point ---------------------------------------------------------------------------------


def main(args):
    """`laserctl run`: 0 on q or Ctrl-C, 1 if the device stopped by itself, 2 if it cannot start."""
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    if not os.isatty(stdin_fd):
        print("laserctl run: the operator console needs a terminal (stdin is not one); for runs "
              "without a person use `laserctl scenario FILE`", file=sys.stderr)
        return 2
    speed = float(getattr(args, "speed", 1.0))
    if not 0 < speed <= MAX_SPEED:
        print("laserctl run: --speed must be > 0 and <= %g, got %g" % (MAX_SPEED, speed),
              file=sys.stderr)
        return 2
    try:
        device = Device(args.board, args.protocol, args.ambient, speed)
    except (ConsoleError, ValueError, OSError) as e:
        print("laserctl run: %s" % e, file=sys.stderr)
        return 2

    sys.stdout.flush()
    screen = Screen(stdout_fd, color_wanted(stdout_fd))
    console = Console(device, screen, speed)
    term = RawTerminal(stdin_fd)

    def on_signal(signum, frame):
        console.quit = signal.Signals(signum).name

    def on_winch(signum, frame):
        console.rebuild = console.dirty = True

    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        old_handlers[sig] = signal.signal(sig, on_signal)
    old_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, on_winch)
    code = 0
    try:
        term.enter()
        screen.write("\x1b[?25l")  # hide the cursor
        p = args.protocol
        console.note("protocol %s W, %s J/cm2 over %s cm2, board %s, ambient %s C"
                     % (p.get("power_w"), p.get("dose_j_cm2"), p.get("area_cm2"),
                        args.board, args.ambient), _DIM)
        ended = console.run(stdin_fd)
        if ended is None:
            console.stop()
        else:
            console.note("the virtual device stopped by itself (exit code %s)" % ended, _RED)
            console.redraw(force=True)
            code = 1
    finally:
        try:
            screen.write("\r\n\x1b[?25h")  # below the block, cursor back
            term.restore()
        finally:
            device.close()  # the interpreter killed, the image removed, whatever happened above
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
    if screen.gone:
        return code
    if code == 0:
        print("laserctl run: closed (%s); virtual device stopped" % console.quit)
    else:
        print("laserctl run: the virtual device stopped by itself", file=sys.stderr)
    return code

"""`laserctl run` (`make run`): the operator console: the virtual device in real time, driven from
the keyboard like the device's front panel.

The unmodified firmware runs on the real MicroPython interpreter in a temporary device image. The
console reads the firmware's JSON lines (its serial port) for the state, power, dose and measured
temperature, and talks to the simulated world over its UDP control channel (the virtual panel,
host_tools/virtual_panel.py): it drives the
operator inputs (key switch, interlock, e-stop, footswitch, arm and reset buttons; where the board
has an operator panel, its encoder and its select and back buttons) and receives snapshots of the
plant (optical power, true heatsink temperature, emission LED, buzzer, the input levels the device
actually sees and the panel's display, pixel by pixel).

The screen is plain ANSI: a log of firmware events scrolls up; below it the panel's display drawn
from its pixels (Unicode quadrant blocks, 2x2 pixels a character, where the terminal has the room,
else braille, 2x4), the inputs and the keys beside it, the operator's status line in plain words
and the engineer's figures, redrawn in place. Standard library only.
"""

import ast
import contextlib
import errno
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from host_tools import device_lines, display, paths, scenario, vdevice
from host_tools.device_lines import selection_name
from host_tools.terminal import RawTerminal, Screen, color_wanted
from host_tools.virtual_panel import VirtualPanel

HELP = ("k key", "i interlock", "e e-stop", "a arm", "r reset", "s silence/ack",
        "f/space footswitch", "d details", "q quit")
PANEL_HELP = ("\u2190/\u2192 or ,/. turn", "Enter push (select)", "Bksp/Esc back")
HISTORY = 500  # log lines kept to rebuild the screen after a resize or Ctrl-L
MAX_SPEED = 100.0
TOGGLES = ("key", "interlock", "estop", "footswitch")
BUTTONS = ("arm", "reset", "ack")
PANEL_BUTTONS = ("select", "back")
KEYS = {"k": "key", "i": "interlock", "e": "estop", "f": "footswitch", " ": "footswitch",
        "a": "arm", "r": "reset", "s": "ack"}
QUIT_KEYS = ("q", "Q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
REDRAW_KEY = "\x0c"  # Ctrl-L
DETAILS_KEY = "d"  # the engineer's lines on and off
# The panel's keys (KeyReader's names for the keys that are not characters): a turn by a detent,
# a push of the encoder (select), the back button.
LEFT, RIGHT, UP, DOWN, ENTER, BACKSPACE, ESC = "LEFT", "RIGHT", "UP", "DOWN", "ENTER", \
    "BACKSPACE", "ESC"
TURNS = {LEFT: -1, UP: -1, ",": -1, "<": -1, RIGHT: 1, DOWN: 1, ".": 1, ">": 1}
PANEL_PRESSES = {ENTER: "select", BACKSPACE: "back", ESC: "back"}
ESC_WAIT_S = 0.05  # an Esc with nothing after it for this long is the Esc key, not a sequence
MAX_QUEUED = 8  # presses (and the panel's turns) waiting for the press before them to end
PRESS_MIN_S = 0.15  # a button press lasts at least this long (wall clock) ...
# ... and this long of the device's virtual time after it reported the button down: whatever the
# wall clock did meanwhile (a loaded host may stop the interpreter for longer than a press), its
# firmware then has sampled the button for several ticks, more than its debounce (30 ms).
PRESS_SEEN_S = 0.1
PRESS_GIVE_UP_S = 2.0  # release anyway if the device never reports the press
REDRAW_S = 0.05
STOP_WAIT_S = 1.0  # for the firmware's last lines to be read once its power is off
MIN_LOG_ROWS = 3  # the quadrant display is drawn only where it leaves this many rows to the log

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
        self.panel = None  # the world's control channel: the operator's inputs, its snapshots
        try:
            tmp = Path(self.tmp.name)
            root = self.root = tmp / "device"
            vdevice.make_image(root, board_name, protocol)
            self.panel = VirtualPanel()
            config = vdevice.sim_config(board, realtime=True, speed=speed, ambient_c=ambient_c,
                                        control_port=self.panel.port)
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
        self._selection = (None, None)  # (the treatment file's mtime and size, its contents)
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
            return ([device_lines.text(rest)] if rest.strip() else []), True
        data = self._partial[fd] + data
        *lines, self._partial[fd] = data.split(b"\n")
        return [device_lines.text(line).rstrip("\r") for line in lines], False

    def is_stdout(self, fd):
        return fd == self.proc.stdout.fileno()

    @property
    def world(self):
        """The world's address, once it has said hello (None until then)."""
        return self.panel.world

    def datagrams(self):
        """The world's messages since the last call: its hello, snapshots, errors."""
        return self.panel.messages()

    def send(self, name, value):
        """Drive input `name`: a level (True/False), or for "encoder" the detents turned now
        (an int, clockwise positive)."""
        return self.panel.send(name, value)

    def selection(self):
        """What the device keeps selected: its treatment file, as the firmware writes it (the
        panel's and the serial `select` alike: {"protocol": name, "skin_type": n}, or a custom
        treatment's spec), or None."""
        path = self.root / "treatment.json"
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            if key != self._selection[0]:  # written again (atomically: write, then rename)
                self._selection = (key, json.loads(path.read_text()))
        except (OSError, ValueError):
            self._selection = (None, None)
        return self._selection[1]

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
        if self.panel is not None:
            self.panel.close()
        self.tmp.cleanup()


def check_protocol(protocol, board):
    """Validate the treatment with the firmware's own code, as the device will at boot."""
    try:
        vdevice.check_treatment(protocol, board)
    except ValueError as e:
        raise ConsoleError("--protocol: %s" % e) from e


# -- the console ---------------------------------------------------------------------------------


class KeyReader:
    """The terminal's bytes as keys: a character for itself, or the name of a key that sends a
    sequence or a control character: LEFT, RIGHT, UP, DOWN (ESC [ C and the like, and ESC O C in
    the terminal's application mode; modifiers ignored), ENTER (CR or LF), BACKSPACE (DEL or
    Ctrl-H) and ESC. An Esc arrives alone: one with nothing after it for ESC_WAIT_S is the Esc
    key (`flush`), one followed by anything but "[" or "O" too. Other sequences (function keys,
    Home, Delete...) are read whole and dropped."""

    _SINGLE = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE}
    _ARROWS = {"A": UP, "B": DOWN, "C": RIGHT, "D": LEFT}
    _LONGEST = 32  # a sequence not ended by then is dropped

    def __init__(self):
        self.pending = ""  # the start of a sequence, waiting for the rest
        self.since = None  # when it began

    def feed(self, text, now):
        """The keys in `text` (read at wall-clock `now`) that are complete."""
        data = self.pending + text
        keys, i = [], 0
        while i < len(data):
            ch = data[i]
            if ch != "\x1b":
                keys.append(self._SINGLE.get(ch, ch))
                i += 1
                continue
            if i + 1 == len(data):
                break  # an Esc, or the start of a sequence: wait
            kind = data[i + 1]
            if kind == "[":  # CSI: parameter and intermediate bytes, then a final byte @..~
                end = i + 2
                while end < len(data) and not "@" <= data[end] <= "~":
                    end += 1
                if end == len(data):
                    if end - i > self._LONGEST:
                        i = end  # no end in sight: not a key
                        continue
                    break
                key = self._ARROWS.get(data[end])
                i = end + 1
            elif kind == "O":  # SS3: one character
                if i + 2 == len(data):
                    break
                key = self._ARROWS.get(data[i + 2])
                i += 3
            else:
                key = ESC
                i += 1
            if key is not None:
                keys.append(key)
        rest = data[i:]
        if rest != self.pending or not rest:
            self.since = now if rest else None
        self.pending = rest
        return keys

    def flush(self, now):
        """The keys of a sequence cut short: an Esc (and what followed it) waiting since
        ESC_WAIT_S before `now`."""
        if not self.pending or now - self.since < ESC_WAIT_S:
            return []
        rest, self.pending, self.since = self.pending[1:], "", None
        return [ESC] + self.feed(rest, now)


class Console:
    def __init__(self, device, screen, speed, clock=time.monotonic):
        self.device = device
        self.screen = screen
        self.speed = speed
        self.clock = clock  # the wall clock
        self.has_panel = bool(device.board.get("panel"))
        self.buttons = BUTTONS + (PANEL_BUTTONS if self.has_panel else ())
        self.status = {}  # the firmware's latest state/status line
        self.plant = {}  # the world's latest snapshot
        self.wanted = {name: name == "interlock" for name in TOGGLES}  # the world's initial
        self.pressed = {}  # button -> [down_at (wall), seen_t (virtual) or None]
        self.releasing = {}  # button -> [up_at, seen_up_t or None], until it was up as long
        self.queued = {}  # button -> presses waiting for the one before to end
        self.panel_queue = deque()  # turns ("encoder", steps) and pushes (button, True) waiting
        self.reader = KeyReader()
        self.image = None  # the panel's display (bytes), from the latest snapshot
        self._image_hex = None  # as the snapshot carried it: a new image only when it changed
        self._rendered = (None, None, [])  # (image, mode, its lines): drawn again on a change
        self.details = True  # the engineer's lines under the operator's
        self.fw_clock = None  # (t_ms of the firmware's latest line, the world's t_s then)
        self.ready_ms = None  # t_ms of the latest READY
        self.emitting_w = None  # the power of the latest EMITTING status: a pause's time left
        self.log = []
        self.history = deque(maxlen=HISTORY)
        self.rebuild = False  # clear the screen and draw again from the history
        self.quit = None  # why the console stops
        self.dirty = True
        self.last_draw = 0.0
        self.state = None

    # -- input -----------------------------------------------------------------------------------

    def handle(self, keys):
        """Keys (KeyReader's) in order; turns in a row go to the device as one."""
        steps = 0
        for key in keys:
            if self.quit is not None:
                return
            turn = TURNS.get(key) if self.has_panel else None
            if turn is not None:
                steps += turn
                continue
            if steps:
                self.turn(steps)
                steps = 0
            self.key(key)
        if steps:
            self.turn(steps)

    def key(self, ch):
        if ch in QUIT_KEYS:
            self.quit = "Ctrl-C" if ch == "\x03" else "quit"
        elif ch == REDRAW_KEY:
            self.rebuild = True
        elif ch in (DETAILS_KEY, DETAILS_KEY.upper()):
            self.details = not self.details
        elif ch in PANEL_PRESSES:
            if self.has_panel:
                self.press(PANEL_PRESSES[ch])
        elif len(ch) == 1:
            name = KEYS.get(ch.lower())
            if name in TOGGLES:
                self.toggle(name)
            elif name in BUTTONS:
                self.press(name)
        self.dirty = True

    def turn(self, steps):
        """The encoder turned by `steps` detents (clockwise positive): at once, or after the
        panel's pushes typed before it."""
        if self.device.world is None:
            self.note("turn: the device is still starting", _YELLOW)
            return
        queue = self.panel_queue
        if queue and queue[-1][0] == "encoder":
            queue[-1] = ("encoder", queue[-1][1] + steps)
        elif queue or self.panel_busy():
            queue.append(("encoder", steps))
        else:
            self.device.send("encoder", steps)
        self.dirty = True

    def panel_busy(self):
        """A push of the panel is under way: its button down, or not yet up as long."""
        return any(name in self.pressed or name in self.releasing for name in PANEL_BUTTONS)

    def toggle(self, name):
        value = not self.level(name)
        self.wanted[name] = value
        if self.device.world is not None:
            self.device.send(name, value)
        self.note("> %s %s" % (_LABEL[name], _level_word(name, value).lower()), _DIM)

    def press(self, name):
        """A press and, at least PRESS_MIN_S later and once the device saw it, the release. A
        press while the button is still down, or not yet up as long, waits (a few at most); the
        panel's turns and pushes go in the order typed."""
        if self.device.world is None:
            self.note("%s: the device is still starting" % name, _YELLOW)
            return
        if name in PANEL_BUTTONS:
            if self.panel_queue or self.panel_busy():
                if len(self.panel_queue) < MAX_QUEUED:
                    self.panel_queue.append((name, True))
                return
        elif name in self.pressed or name in self.releasing:
            self.queued[name] = min(MAX_QUEUED, self.queued.get(name, 0) + 1)
            return
        self._press(name)

    def _press(self, name):
        self.device.send(name, True)
        self.pressed[name] = [self.clock(), None]
        self.note("> %s pressed" % name, _DIM)

    def release_buttons(self, now):
        t = self.plant.get("t_s")
        for name, (down_at, seen_t) in list(self.pressed.items()):
            held = now - down_at
            if (seen_t is not None and held >= PRESS_MIN_S and t - seen_t >= PRESS_SEEN_S) \
                    or held >= PRESS_GIVE_UP_S:
                if seen_t is None:
                    self.note("%s: the device did not see the press" % name, _RED)
                self.device.send(name, False)
                del self.pressed[name]
                self.releasing[name] = [now, None]
                self.dirty = True
        # Up as long as a press lasts, as the device saw it: pressed again if asked meanwhile.
        for name, (up_at, seen_t) in list(self.releasing.items()):
            up = now - up_at
            if (seen_t is not None and up >= PRESS_MIN_S and t - seen_t >= PRESS_SEEN_S) \
                    or up >= PRESS_GIVE_UP_S:
                del self.releasing[name]
                if self.queued.get(name):
                    self.queued[name] -= 1
                    self._press(name)
        queue = self.panel_queue
        while queue and not self.panel_busy():
            name, value = queue.popleft()
            if name == "encoder":
                self.device.send(name, value)
            else:
                self._press(name)

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
        elif _is_num(msg.get("t_s")):
            self.plant = msg
            inputs = msg.get("inputs") or {}
            for name, entry in self.pressed.items():
                if entry[1] is None and inputs.get(name):
                    entry[1] = msg["t_s"]
            for name, entry in self.releasing.items():
                if entry[1] is None and name in inputs and not inputs[name]:
                    entry[1] = msg["t_s"]
            image = msg.get("display")
            if isinstance(image, str) and len(image) == 2 * display.BYTES and \
                    image != self._image_hex:
                with contextlib.suppress(ValueError):
                    self.image, self._image_hex = bytes.fromhex(image), image
        self.dirty = True

    def firmware_line(self, line):
        ev = device_lines.object_in(line)
        if not isinstance(ev, dict) or "ev" not in ev:
            if line.strip():
                self.note("device: " + line.strip(), _DIM)
            return
        kind = ev["ev"]
        t_ms = ev.get("t_ms")
        if isinstance(t_ms, int) and not isinstance(t_ms, bool):
            self.fw_clock = (t_ms, self.plant.get("t_s"))
        if kind in ("state", "status", "halt"):
            self.status = ev
            self.dirty = True
            if ev.get("state") == "EMITTING" and _is_num(ev.get("power_w")) and ev["power_w"] > 0:
                self.emitting_w = ev["power_w"]
        t = _t_s(ev)
        if kind == "state":
            state = ev.get("state")
            if state == "READY" and state != self.state:
                self.ready_ms = t_ms if isinstance(t_ms, int) else None
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
        """The block under the log: the panel's display (where the board has one and the
        terminal the room) with the inputs and keys beside it, the operator's line, the
        engineer's lines; as many rows as the terminal has, less at least one for the log."""
        scr = self.screen
        width, height = scr.width(), scr.size()[1]
        operator = scr.wrap(self.operator_parts(), width, " - ")
        details = scr.wrap(self.engineer_segments(), width) if self.details else []
        inputs = self.input_segments()
        keys = [(text, _DIM) for text in (PANEL_HELP if self.has_panel else ()) + HELP]
        below = scr.wrap(inputs, width) + scr.wrap(keys, width)
        if self.has_panel:
            for mode, log_rows, shown in ((QUADRANTS, MIN_LOG_ROWS, details),
                                          (BRAILLE, 1, details), (BRAILLE, 1, [])):
                block = self.panel_block(mode, inputs, keys, width)
                if block is None:
                    continue
                lines = block[0] + operator + shown + block[1]
                if len(lines) + log_rows <= height:
                    return lines
            below = [scr.style("display hidden: the terminal is too small for it (%d x %d)"
                               % scr.size(), _YELLOW)] + below
        lines = operator + details + below
        return lines[:max(1, height - 1)]

    def panel_block(self, mode, inputs, keys, width):
        """The display framed with the inputs and keys beside it where they fit: (its lines,
        the lines for under the status lines); None where the terminal is too narrow for it."""
        scr = self.screen
        frame = self.display_lines(mode)
        frame_width = _framed_size(mode)[0]
        if width < frame_width:
            return None
        side_width = width - frame_width - 2
        side = None
        if side_width >= 16:
            for side in ([scr.style(text[:side_width], sgr) for text, sgr in inputs] + [""]
                         + scr.wrap(keys, side_width),
                         scr.wrap(inputs, side_width) + [""] + scr.wrap(keys, side_width)):
                if len(side) <= len(frame):
                    break
            else:
                side = None
        if side is None:
            return frame, scr.wrap(inputs, width) + scr.wrap(keys, width)
        side += [""] * (len(frame) - len(side))
        return [line + "  " + extra if extra else line
                for line, extra in zip(frame, side, strict=True)], []

    def display_lines(self, mode):
        """The display framed, drawn again only when its image changed."""
        image, drawn_mode, lines = self._rendered
        if image is not self.image or drawn_mode is not mode or not lines:
            title = " panel " if self.image is not None else " panel: no image yet "
            pixels = self.image if self.image is not None else bytes(display.BYTES)
            lines = _styled_frame(self.screen, frame(mode(pixels), title))
            self._rendered = (self.image, mode, lines)
        return lines

    def operator_parts(self):
        s = self.status
        return operator_parts(s, selection_name(self.device.selection()),
                              ready_left_s=self.ready_left_s(),
                              footswitch=self.level("footswitch"), paused_w=self.emitting_w)

    def ready_left_s(self):
        """The emission warning's time left (s) by the firmware's clock: from its READY line to
        its latest line, and the world's virtual time since (its snapshots: the status lines
        come every 250 ms, they every 100). None outside READY."""
        if self.status.get("state") != "READY" or self.ready_ms is None or self.fw_clock is None:
            return None
        delay_ms = self.device.board.get("timing", {}).get("emission_delay_ms")
        if not _is_num(delay_ms):
            return None
        t_ms, world_s = self.fw_clock
        since_ms = _ticks_diff(t_ms, self.ready_ms)
        now_s = self.plant.get("t_s")
        if _is_num(world_s) and _is_num(now_s):
            since_ms += min(1000.0, max(0.0, now_s - world_s) * 1000.0)
        return max(0.0, (delay_ms - since_ms) / 1000.0)

    def engineer_segments(self):
        """The firmware's figures as an engineer reads them, dim but for what is wrong."""
        s, p = self.status, self.plant
        state = s.get("state") or "starting"
        if state == "FAULT" and s.get("fault"):
            state = "FAULT %s" % s["fault"]
        alert = _RED + ";1"
        return [(state, _DIM),
                ("permit %s" % ("yes" if s.get("permit") else "no"), _DIM),
                ("power %s W" % _num(s.get("power_w"), "%.2f"), _DIM),
                ("dose " + _dose_text(s), _DIM),
                # The state machine's request and the supervisor's verdict: a veto is red.
                ("request %s%s" % ("on" if s.get("request") else "off",
                                   "" if s.get("permit") or not s.get("why")
                                   else ", withheld: %s" % s["why"]),
                 alert if s.get("request") and not s.get("permit") else _DIM),
                ("temp %s C (plant %s C)" % (_num(s.get("temp_c"), "%.1f"),
                                           _num(p.get("heatsink_c"), "%.1f")),
                 alert if s.get("temp_c", 0) is None else _DIM),
                (_thermal_text(s), _THERMAL_STYLE.get(s.get("thermal"), _DIM)),
                (_alarm_text(s), _ALARM_STYLE.get(s.get("alarm"), _DIM)),
                ("LED %s" % _on(p.get("led")), alert if p.get("led") else _DIM),
                ("buzzer %s" % _on(p.get("buzzer")), _YELLOW + ";1" if p.get("buzzer") else _DIM)]

    def input_segments(self):
        """What the device sees on its inputs, the buttons held down, the virtual time."""
        segments = []
        for name in TOGGLES:
            value = self.level(name)
            word = _level_word(name, value)
            alarm = value if name != "interlock" else not value
            segments.append(("%s %s" % (_LABEL[name], word),
                             ("7;1" if name == "footswitch" else _RED + ";1") if alarm else None))
        for name in self.buttons:
            if name in self.pressed:
                segments.append(("%s DOWN" % name, "7"))
        t = self.plant.get("t_s")
        segments.append(("t %s s%s" % (_num(t, "%.1f"), " (x%g)" % self.speed
                                       if self.speed != 1 else ""), _DIM))
        return segments

    def redraw(self, force=False):
        now = self.clock()
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
            fds = dev.pipes() + [dev.panel, stdin_fd]
            try:
                ready, _, _ = select.select(fds, [], [], REDRAW_S)
            except InterruptedError:
                ready = []
            for item in ready:
                if item == stdin_fd:
                    self.keys(stdin_fd)
                elif item is dev.panel:
                    for msg in dev.datagrams():
                        self.datagram(msg)
                else:
                    self.pipe(item)
            now = self.clock()
            self.handle(self.reader.flush(now))
            self.release_buttons(now)
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
        self.handle(self.reader.feed(data.decode("latin-1"), self.clock()))

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


# -- the panel's display in the terminal -------------------------------------------------------

# Quadrant blocks: index = top left 1 + top right 2 + bottom left 4 + bottom right 8.
QUADRANT_CHARS = (" \u2598\u259d\u2580\u2596\u258c\u259e\u259b"
                  "\u2597\u259a\u2590\u259c\u2584\u2599\u259f\u2588")
# Braille: a column of 4 pixels (a nibble of a MONO_VLSB byte, top bit 0) as the dots of the
# cell's left column (1, 2, 3, 7) and its right column (4, 5, 6, 8).
_BRAILLE_LEFT = tuple(sum(dot for bit, dot in enumerate((0x01, 0x02, 0x04, 0x40)) if n >> bit & 1)
                      for n in range(16))
_BRAILLE_RIGHT = tuple(sum(dot for bit, dot in enumerate((0x08, 0x10, 0x20, 0x80)) if n >> bit & 1)
                       for n in range(16))


def quadrant_lines(image):
    """The display's image (display.BYTES, MONO_VLSB) as 32 lines of 64 quadrant characters,
    2x2 pixels each; an unlit cell is a space."""
    lines = []
    for page in range(display.LINES):
        row = image[page * display.WIDTH:(page + 1) * display.WIDTH]
        for shift in range(0, 8, 2):  # two pixel rows of the page's eight
            cells = ((row[x] >> shift & 3, row[x + 1] >> shift & 3)
                     for x in range(0, display.WIDTH, 2))
            lines.append("".join(QUADRANT_CHARS[(left & 1) | (right & 1) << 1 | (left >> 1) << 2
                                                | (right >> 1) << 3] for left, right in cells))
    return lines


def braille_lines(image):
    """The display's image as 16 lines of 64 braille characters, 2x4 pixels each; an unlit cell
    is a space."""
    lines = []
    for page in range(display.LINES):
        row = image[page * display.WIDTH:(page + 1) * display.WIDTH]
        for shift in (0, 4):  # the page's top four pixel rows, then its bottom four
            cells = (_BRAILLE_LEFT[row[x] >> shift & 15] | _BRAILLE_RIGHT[row[x + 1] >> shift & 15]
                     for x in range(0, display.WIDTH, 2))
            lines.append("".join(chr(0x2800 + dots) if dots else " " for dots in cells))
    return lines


QUADRANTS, BRAILLE = quadrant_lines, braille_lines  # the two ways to draw it


def frame(lines, title=""):
    """Lines of equal length in a box, `title` in its top edge."""
    inner = len(lines[0]) if lines else 0
    title = title[:max(0, inner - 1)]
    top = "\u250c\u2500" + title + "\u2500" * max(0, inner - 1 - len(title)) + "\u2510"
    bottom = "\u2514" + "\u2500" * inner + "\u2518"
    return [top] + ["\u2502%s\u2502" % line for line in lines] + [bottom]


def _framed_size(mode):
    """(columns, rows) of the display drawn `mode` in its frame."""
    cell_w, cell_h = 2, (2 if mode is QUADRANTS else 4)
    return display.WIDTH // cell_w + 2, display.HEIGHT // cell_h + 2


def _styled_frame(screen, lines):
    """The box's edges dim, the pixels as they are."""
    styled = [screen.style(lines[0], _DIM)]
    for line in lines[1:-1]:
        styled.append(screen.style(line[0], _DIM) + line[1:-1] + screen.style(line[-1], _DIM))
    styled.append(screen.style(lines[-1], _DIM))
    return styled


# -- the operator's line -------------------------------------------------------------------------

def operator_parts(s, name, ready_left_s=None, footswitch=False, paused_w=None):
    """The operator's line from the firmware's latest state/status line `s`: [(text, sgr)], to
    be joined by " - ". `name`: the selected treatment in words (selection_name); `ready_left_s`:
    the emission warning's time left; `footswitch`: held; `paused_w`: the power emission had,
    for a pause's time left."""
    state = s.get("state")
    who = (name or "no treatment", _BOLD)
    style = _STATE_STYLE.get(state)
    delivered, target, power = s.get("delivered_j"), s.get("target_j"), s.get("power_w")
    if s.get("ev") == "halt":
        parts = [("STOPPED: the firmware's loop ended, laser off", _YELLOW + ";1")]
        if _is_num(delivered):
            parts.append(("%.1f J given" % delivered, None))
        return parts
    if state is None:
        return [("Starting...", _DIM)]
    if state == "BOOT":
        return [("Starting: self-test", _DIM)]
    if state == "STANDBY":
        parts = [who, ("STANDBY", None)]
        if _is_num(target):
            parts.append(("%s J to give" % _joules(target), None))
        locked = s.get("locked")
        if locked:
            parts.append(("arming locked%s" % (": %s" % locked if isinstance(locked, str) else ""),
                          _YELLOW + ";1"))
    elif state == "READY":
        if ready_left_s:
            head = "READY: emission possible in %.1f s" % ready_left_s
        elif footswitch:
            head = "READY: release the footswitch, then press it"
        else:
            head = "READY: press the footswitch to emit"
        parts = [(head, style), who]
    elif state in ("EMITTING", "PAUSED"):
        emitting = state == "EMITTING"
        parts = [who, ("EMITTING %s W" % _num(power, "%.1f") if emitting else "PAUSED", style)]
        if _is_num(delivered) and _is_num(target):
            parts.append(("%.1f of %s J" % (delivered, _joules(target)), None))
            left = _time_left(delivered, target, power if emitting else paused_w)
            if left is not None:
                parts.append(("%s left" % left, None))
        if not emitting:
            parts.append(("hold the footswitch to go on", None))
        if _is_num(s.get("temp_c")):
            parts.append(("heatsink %.1f C" % s["temp_c"], None))
    elif state == "COMPLETE":
        parts = [("COMPLETE: %s J given" % _num(delivered, "%.1f"), style), who]
    elif state == "FAULT":
        parts = [("FAULT: %s" % fault_text(s.get("fault")), style)]
    else:
        parts = [(str(state), style), who]
    if state in ("READY", "EMITTING", "PAUSED"):
        pct = s.get("derate_pct")
        if s.get("thermal") == "DERATE" and _is_num(pct) and pct < 100:
            parts.append(("power cut to %d%%" % pct, _THERMAL_STYLE["DERATE"]))
        elif s.get("thermal") == "WARNING":
            parts.append(("heatsink warm", _THERMAL_STYLE["WARNING"]))
    alarm = s.get("alarm")
    if alarm and alarm != "NONE":
        parts.append(("%s alarm%s" % (alarm, " (silenced)" if s.get("silenced") else ""),
                      _ALARM_STYLE.get(alarm)))
    return parts


def operator_text(*args, **kwargs):
    """The operator's line as plain text (operator_parts' arguments)."""
    return " - ".join(text for text, _ in operator_parts(*args, **kwargs))


def fault_text(code):
    """A fault in the panel's own words: "E-stop pressed - release it, then press reset"."""
    words = _fault_words().get(code)
    if words is None:
        return str(code) if code else "fault"
    what, todo = words
    return "%s - %s" % (what, todo) if todo else what


def _fault_words():
    """{code: (what happened, what to do)} from the panel's table (firmware/lib/screens.py,
    _FAULT_WORDS), read as data: the module itself draws with framebuf, which CPython lacks. {}
    where the table cannot be read: the line then shows the code."""
    global _FAULTS
    if _FAULTS is None:
        _FAULTS = {}
        try:
            tree = ast.parse((paths.FIRMWARE / "lib" / "screens.py").read_text())
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(
                        isinstance(target, ast.Name) and target.id == "_FAULT_WORDS"
                        for target in node.targets):
                    for code, *lines in ast.literal_eval(node.value):
                        lines = [line.decode() for line in lines if line]
                        what = lines.pop(0)
                        if lines and lines[0].startswith("("):  # "(open circuit)"
                            what += " " + lines.pop(0)
                        todo = " ".join(lines)
                        _FAULTS[code] = (what, todo[:1].lower() + todo[1:])
        except (OSError, SyntaxError, ValueError, TypeError, AttributeError, IndexError):
            pass
    return _FAULTS


_FAULTS = None


def _joules(value):
    """An energy as a display shows a target: whole where it is whole."""
    return "%.0f" % value if abs(value - round(value)) < 0.05 else "%.1f" % value


def _time_left(delivered, target, power):
    """m:ss (h:mm:ss from an hour) of emission left at `power`, rounded up; None if unknown."""
    if not _is_num(power) or power <= 0:
        return None
    seconds = int(math.ceil(max(0.0, target - delivered) / power - 1e-9))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "%d:%02d:%02d" % (hours, minutes, seconds) if hours else "%d:%02d" % (minutes, seconds)


_TICKS_PERIOD = 1 << 30  # the ESP32's ticks_ms wrap (sim_time, as the chip)


def _ticks_diff(a, b):
    return (a - b + _TICKS_PERIOD // 2) % _TICKS_PERIOD - _TICKS_PERIOD // 2


def _is_num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _level_word(name, value):
    if name == "key":
        return "ON" if value else "off"
    if name == "interlock":
        return "closed" if value else "OPEN"
    if name == "estop":
        return "PRESSED" if value else "off"
    return "HELD" if value else "up"


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
    low, high = scenario.AMBIENT_RANGE_C  # the rooms a scenario may give, the same here
    if not low <= args.ambient <= high:
        print("laserctl run: --ambient must be within %g..%g C, got %g" % (low, high, args.ambient),
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

"""The operator console (`laserctl run`): its pieces without a terminal (the display drawn in
characters, the keys, the operator's line, the layout, with a fake device and a fake clock), and
the whole of it in a real pseudo-terminal: keys in, screen out.

The pseudo-terminal tests start the console as a user would, with the pty as its controlling
terminal, and drive the real firmware on the real MicroPython interpreter in virtual time (--speed
20 or 100): a 2 s emission warning is 0.1 s of wall clock. Nothing sleeps: every step polls the
screen with a timeout.
"""

import codecs
import contextlib
import fcntl
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import unicodedata
from pathlib import Path

import pytest

from host_tools import display, vdevice
from host_tools import run as run_mod
from host_tools.terminal import Screen
from host_tools.virtual_panel import VirtualPanel

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT_S = 8.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(),
                                reason="finds the interpreter's process through /proc")


# -- reading the screen ----------------------------------------------------------------------


class Vt:
    """Enough of a terminal for what the console writes: characters, CR, LF (scrolling at the
    bottom), cursor moves, erasing, SGR (ignored)."""

    def __init__(self, cols, rows):
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.rest = ""

    def feed(self, text):
        data = self.rest + text
        i, n = 0, len(data)
        while i < n:
            ch = data[i]
            if ch == "\x1b":
                if i + 1 >= n:
                    break
                if data[i + 1] != "[":
                    i += 2
                    continue
                j = i + 2
                while j < n and not "@" <= data[j] <= "~":
                    j += 1
                if j >= n:
                    break
                self._csi(data[i + 2:j], data[j])
                i = j + 1
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self._down()
            elif ch == "\x08":
                self.col = max(0, self.col - 1)
            elif ch >= " ":
                if self.col >= self.cols:
                    self.col = 0
                    self._down()
                self.grid[self.row][self.col] = ch
                self.col += 1
            i += 1
        self.rest = data[i:]

    def _down(self):
        if self.row == self.rows - 1:
            self.grid.pop(0)
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _csi(self, params, final):
        if params.startswith("?"):
            return
        nums = [int(p) if p else 0 for p in params.split(";")] if params else []
        first = nums[0] if nums else 0
        if final == "A":
            self.row = max(0, self.row - max(1, first))
        elif final == "B":
            self.row = min(self.rows - 1, self.row + max(1, first))
        elif final == "C":
            self.col = min(self.cols - 1, self.col + max(1, first))
        elif final == "D":
            self.col = max(0, self.col - max(1, first))
        elif final == "H":
            self.row = max(1, first) - 1 if nums else 0
            self.col = max(1, nums[1]) - 1 if len(nums) > 1 else 0
        elif final == "J":
            if first == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
            else:
                self.grid[self.row][self.col:] = [" "] * (self.cols - self.col)
                for r in range(self.row + 1, self.rows):
                    self.grid[r] = [" "] * self.cols
        elif final == "K":
            if first == 2:
                self.grid[self.row] = [" "] * self.cols
            elif first == 0:
                self.grid[self.row][self.col:] = [" "] * (self.cols - self.col)

    def lines(self):
        return ["".join(r).rstrip() for r in self.grid]


# The dots of a braille cell, by number: (x, y) in its 2x4 pixels.
_DOTS = {"1": (0, 0), "2": (0, 1), "3": (0, 2), "4": (1, 0), "5": (1, 1), "6": (1, 2),
         "7": (0, 3), "8": (1, 3)}
_QUARTERS = {"UPPER LEFT": (0, 0), "UPPER RIGHT": (1, 0), "LOWER LEFT": (0, 1),
             "LOWER RIGHT": (1, 1)}
_HALVES = {"FULL BLOCK": tuple(_QUARTERS), "UPPER HALF BLOCK": ("UPPER LEFT", "UPPER RIGHT"),
           "LOWER HALF BLOCK": ("LOWER LEFT", "LOWER RIGHT"),
           "LEFT HALF BLOCK": ("UPPER LEFT", "LOWER LEFT"),
           "RIGHT HALF BLOCK": ("UPPER RIGHT", "LOWER RIGHT")}


def lit_in(ch):
    """The lit pixels (x, y) of a character cell, by the character's Unicode name (not by the
    console's tables): a space, a quadrant or half block, a braille pattern."""
    if ch == " ":
        return []
    name = unicodedata.name(ch)
    if name.startswith("BRAILLE PATTERN DOTS-"):
        return [_DOTS[d] for d in name[len("BRAILLE PATTERN DOTS-"):]]
    if name == "BRAILLE PATTERN BLANK":
        return []
    if name in _HALVES:
        return [_QUARTERS[q] for q in _HALVES[name]]
    assert name.startswith("QUADRANT "), name
    return [_QUARTERS[q] for q in name[len("QUADRANT "):].split(" AND ")]


def image_of(rows):
    """The display's image (MONO_VLSB) from its 64 characters a row: 32 rows of quadrants or
    16 of braille."""
    cell_h = display.HEIGHT // len(rows)
    image = bytearray(display.BYTES)
    for cy, row in enumerate(rows):
        assert len(row) == display.WIDTH // 2, row
        for cx, ch in enumerate(row):
            for dx, dy in lit_in(ch):
                x, y = 2 * cx + dx, cell_h * cy + dy
                image[(y >> 3) * display.WIDTH + x] |= 1 << (y & 7)
    return bytes(image)


def drawn_panel(lines):
    """The rows of characters inside the panel's frame on the screen, or None."""
    for top, line in enumerate(lines):
        left = line.find("\u250c\u2500 panel")
        if left < 0:
            continue
        rows = []
        for below in lines[top + 1:]:
            edge = below[left:left + 1]
            if edge == "\u2514":
                return rows if len(rows) in (16, 32) else None
            if edge != "\u2502":
                return None
            rows.append(below[left + 1:left + 1 + display.WIDTH // 2].ljust(display.WIDTH // 2))
    return None


def virtual_t(lines):
    """The virtual time the console shows (its "t 12.3 s"), or None."""
    for line in lines:
        match = re.search(r"\bt (\d+\.\d) s\b", line)
        if match:
            return float(match.group(1))
    return None


def drawn_panel_text(lines):
    """The panel's 8 lines of text read back from the display drawn on the screen, or None."""
    rows = drawn_panel(lines)
    return None if rows is None else display.text(image_of(rows))


def _own_terminal():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the controlling terminal, as in a shell


class Terminal:
    """`laserctl run` in a pseudo-terminal (100x24 unless told): reads what it writes as plain
    text, and as a screen (a small terminal emulator: Vt)."""

    def __init__(self, tmp_path, *args, size=(100, 24)):
        self.tmp_path = tmp_path
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.vt = Vt(*size)
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
            text = self._decoder.decode(data)
            self.raw += text
            self.vt.feed(text)

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
                                     % (pattern, timeout, "\n".join(self.vt.lines())))
            self._read(min(left, 0.1))

    def expect_screen(self, check, what, timeout=TIMEOUT_S):
        """Wait until check(screen lines) holds; return what it returned."""
        deadline = time.monotonic() + timeout
        while True:
            found = check(self.vt.lines())
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: not on the screen within %g s; it shows:\n%s"
                                     % (what, timeout, "\n".join(self.vt.lines())))
            self._read(min(left, 0.05))

    def expect_panel(self, check, what, timeout=TIMEOUT_S, settle_s=0.5):
        """Wait until check(the panel's text, read back from the display drawn on the screen)
        holds, and the text stays as it is for `settle_s` of virtual time (the console's "t"):
        the panel draws a new screen a row a tick, a whole one in 0.32 s. Returns the text."""
        seen = since = None

        def found(lines):
            nonlocal seen, since
            text = drawn_panel_text(lines)
            if text is None or not check(text):
                seen = None
                return None
            t = virtual_t(lines)
            if t is None:  # the console's clock is not on the screen this instant: look again
                return None
            if text != seen or since is None:
                seen, since = text, t
            return text if since is not None and t - since >= settle_s else None

        return self.expect_screen(found, what, timeout)

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

    def start(*args, size=(100, 24)):
        term = Terminal(tmp_path, *args, size=size)
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
    term.expect_panel(lambda t: t[0] == "STANDBY", "the panel")
    assert len(drawn_panel(term.vt.lines())) == 16  # 100x24: braille
    for help_text in ("k key", "i interlock", "e e-stop", "a arm", "r reset", "s silence/ack",
                      "f/space footswitch", "d details", "q quit", "\u2190/\u2192 or ,/. turn",
                      "Enter push (select)", "Bksp/Esc back"):
        term.expect(re.escape(help_text))
    term.expect(r"custom treatment - STANDBY - 200 J to give")  # the operator's line
    assert len(term.interpreters()) == 1

    term.expect(r"key ON", term.send("k"))
    mark = term.send("a")
    term.expect(r"STANDBY -> READY", mark)
    term.expect(r"READY: emission possible in \d\.\d s - custom treatment", mark)
    term.expect(r"READY\s+permit no", mark)  # the engineer's line
    term.expect(r"request off, withheld: footswitch up", mark)  # the supervisor's reason
    term.expect(r"LED ON", mark)

    # Hold the footswitch: the firmware starts emitting once the 2 s warning is over.
    mark = term.send("f")
    term.expect(r"footswitch HELD", mark)
    term.expect(r"READY -> EMITTING", mark)
    power = term.expect(r"EMITTING\s+permit yes\s+power (\d+\.\d+) W", mark)
    assert float(power.group(1)) == pytest.approx(5.0)
    term.expect(r"custom treatment - EMITTING 5\.0 W - \d+\.\d of 200 J - 0:[0-4]\d left - "
                r"heatsink \d+\.\d C", mark)
    term.expect(r"request on\s", mark)
    term.expect(r"dose (\d+\.\d)/200\.0 J", mark)

    # Release: paused, dose kept; press again: it finishes the dose by itself.
    mark = term.send(" ")
    paused = term.expect(r"EMITTING -> PAUSED\s+(\d+\.\d)/200\.0 J", mark)
    assert 0 < float(paused.group(1)) < 200
    term.expect(r"footswitch up", mark)
    # (the operator's line wraps in two here, between its parts)
    term.expect(r"custom treatment - PAUSED - \d+\.\d of 200 J - 0:[0-4]\d left", mark)
    term.expect(r"hold the footswitch to go on - heatsink", mark)
    mark = term.send(" ")
    term.expect(r"PAUSED -> EMITTING", mark)
    done = term.expect(r"EMITTING -> COMPLETE\s+(\d+\.\d)/200\.0 J 100%", mark)
    # Within a tick's energy, or a few more when a loaded host stalls the real-time clock.
    assert float(done.group(1)) == pytest.approx(200.0, abs=1.0)
    term.expect(r"COMPLETE\s+permit \w+\s+power 0\.00 W", mark)
    term.expect(r"COMPLETE: (\d+\.\d) J given - custom treatment", mark)

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

    term = console("--ambient", "90")  # a room no scenario may give either
    assert term.wait() == 2
    term.expect(r"--ambient must be within -20\.\.60 C, got 90")
    assert term.interpreters() == []


def test_without_a_terminal_it_says_so():
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", "run"], cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr


# -- the operator panel, in the terminal -----------------------------------------------------------

RIGHT, LEFT, ENTER = "\x1b[C", "\x1b[D", "\r"


def _cursor_on(text):
    """The item the panel's cursor is on (the line starting with ">"), or None."""
    for line in text:
        if line.startswith(">"):
            return line[1:].strip()
    return None


def _choose(term, title, item, turns=12):
    """On the list screen `title`: turn right until the cursor is on `item`, then push."""
    for _ in range(turns):
        text = term.expect_panel(lambda t: t[0] == title and _cursor_on(t) is not None,
                                 "the %r list" % title)
        if _cursor_on(text) == item:
            mark = term.send(ENTER)
            term.expect(r"> select pressed", mark)
            return
        before = _cursor_on(text)
        term.send(RIGHT)
        term.expect_panel(lambda t, before=before: t[0] == title and _cursor_on(t) not in
                          (None, before), "the cursor moved from %r" % before)
    raise AssertionError("%r not in the %r list" % (item, title))


def test_the_knee_preset_at_skin_type_v_given_with_the_panel_keys(console):
    """What `make run` must allow: a whole treatment chosen, armed, given and acknowledged with
    the encoder's keys, each step read from the display drawn in the terminal."""
    term = console("--speed", "100", size=(120, 50))
    # After the boot the cursor is on New treatment, off Arm.
    term.expect_panel(lambda t: t[0] == "STANDBY" and _cursor_on(t) == "New treatment",
                      "STANDBY")
    assert len(drawn_panel(term.vt.lines())) == 32  # room for quadrants
    term.expect(r"key ON", term.send("k"))
    _choose(term, "STANDBY", "New treatment")
    term.expect_panel(lambda t: t[0] == "Body region", "the regions")
    term.send("\x1b")  # Esc: the back button
    _choose(term, "STANDBY", "New treatment")
    _choose(term, "Body region", "knee")
    _choose(term, "knee", "knee pain, oste")
    _choose(term, "Skin type", "V")
    summary = term.expect_panel(lambda t: t[-1] == "Push: confirm", "the summary")
    assert summary[:2] == ["knee", "Skin type V"], summary
    term.send(ENTER)
    home = term.expect_panel(lambda t: t[0] == "STANDBY" and t[1].startswith("knee")
                             and _cursor_on(t) == "Arm", "knee selected, the cursor on Arm")
    assert home[1].endswith(" V"), home
    term.expect_screen(lambda lines: any(line.startswith("knee, skin type V - STANDBY - 1000 J")
                                         for line in lines), "the operator's line")
    term.send(ENTER)
    term.expect_panel(lambda t: t[0] == "LASER SAFETY", "the eyewear question")
    mark = term.send(ENTER)
    term.expect(r"STANDBY -> READY", mark)
    term.expect_panel(lambda t: t[0].startswith("READY"), "READY", settle_s=0)
    mark = term.send("f")
    term.expect(r"READY -> EMITTING", mark)
    term.expect(r"knee, skin type V - EMITTING \d+\.\d W - \d+\.\d of 1000 J - \d:\d\d left", mark)
    term.expect_panel(lambda t: t[0].startswith("EMITTING"), "EMITTING", settle_s=0)
    done = term.expect(r"EMITTING -> COMPLETE\s+(\d+\.\d)/1000\.0 J 100%", mark, timeout=30)
    assert float(done.group(1)) == pytest.approx(1000.0, abs=1.0)
    term.expect(r"COMPLETE: 10\d\d\.\d J given - knee, skin type V", mark)
    term.expect_panel(lambda t: t[0].startswith("COMPLETE"), "COMPLETE", settle_s=0)
    term.send("f")
    mark = term.send(ENTER)  # acknowledge
    term.expect(r"COMPLETE -> STANDBY", mark)
    term.send("q")
    _assert_closed_cleanly(term)


# -- the pieces, without a terminal ------------------------------------------------------------


class FakeScreen(Screen):
    """A Screen of a given size whose output is kept."""

    def __init__(self, cols=100, rows=24):
        super().__init__(-1, color=False)
        self.cols, self.lines = cols, rows
        self.out = []

    def size(self):
        return self.cols, self.lines

    def write(self, text):
        self.out.append(text)


class FakeDevice:
    """The Device as the console uses it: a board, the world's address, what was sent."""

    def __init__(self, panel=True, selection=None):
        _, self.board = vdevice.load_board("sim")
        if not panel:
            self.board = {k: v for k, v in self.board.items() if k != "panel"}
        self.world = ("127.0.0.1", 9)
        self.sent = []
        self.chosen = selection

    def send(self, name, value):
        self.sent.append((name, value))
        return True

    def selection(self):
        return self.chosen


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _console(panel=True, size=(100, 24), selection=None, speed=1.0):
    clock = Clock()
    con = run_mod.Console(FakeDevice(panel, selection), FakeScreen(*size), speed, clock)
    return con, clock


def _snapshot(con, t_s, image=None, **inputs):
    msg = {"t_s": t_s, "inputs": dict({"key": False, "interlock": True, "estop": False,
                                       "footswitch": False, "select": False, "back": False},
                                      **inputs)}
    if image is not None:
        msg["display"] = image.hex()
    con.datagram(msg)


def _pattern():
    """An image with every 2x2 and 2x4 combination somewhere, and a known corner."""
    rng = random.Random(17)
    image = bytearray(rng.getrandbits(8) for _ in range(display.BYTES))
    image[0] = 0b0000_1001  # (0,0) and (0,3) lit, (0,1) (0,2) dark
    image[1] = 0b0000_0010  # (1,1) lit
    return bytes(image)


@pytest.mark.parametrize("mode, rows", [(run_mod.QUADRANTS, 32), (run_mod.BRAILLE, 16)])
def test_the_display_drawn_in_characters_reads_back_pixel_for_pixel(mode, rows):
    image = _pattern()
    lines = mode(image)
    assert len(lines) == rows and all(len(line) == 64 for line in lines)
    assert image_of(lines) == image  # read back by the characters' Unicode names
    assert mode(bytes(display.BYTES)) == [" " * 64] * rows  # dark: spaces
    assert set("".join(mode(b"\xff" * display.BYTES))) == \
        {"\u2588" if mode is run_mod.QUADRANTS else "\u28ff"}


def test_known_cells():
    image = _pattern()
    # (0,0) lit, (1,0) dark, (0,1) dark, (1,1) lit: upper left and lower right.
    assert run_mod.quadrant_lines(image)[0][0] == "\u259a"
    # Rows 0..3 of columns 0 and 1: (0,0), (0,3), (1,1): dots 1, 7 and 5.
    assert run_mod.braille_lines(image)[0][0] == chr(0x2800 + 0x01 + 0x40 + 0x10)
    assert run_mod.frame(["ab", "cd"], "x") == ["\u250c\u2500x\u2510", "\u2502ab\u2502",
                                                     "\u2502cd\u2502", "\u2514\u2500\u2500\u2518"]


def test_keys_arrows_enter_backspace_and_esc():
    R = run_mod
    reader = R.KeyReader()
    assert reader.feed("\x1b[C\x1b[D\x1b[A\x1b[B\x1bOC\x1bOD\x1b[1;5C", 0) == \
        [R.RIGHT, R.LEFT, R.UP, R.DOWN, R.RIGHT, R.LEFT, R.RIGHT]
    assert reader.feed("\r\n\x7f\x08,.<>ka", 0) == \
        [R.ENTER, R.ENTER, R.BACKSPACE, R.BACKSPACE, ",", ".", "<", ">", "k", "a"]
    assert reader.feed("\x1b[3~\x1b[15~q", 0) == ["q"]  # Delete, F5: not keys here
    # A sequence split between reads waits for its end; an Esc alone is the Esc key once
    # nothing follows it for ESC_WAIT_S.
    assert reader.feed("\x1b", 1.0) == []
    assert reader.feed("[", 1.01) == []
    assert reader.feed("C", 1.02) == [R.RIGHT]
    assert reader.feed("\x1b", 2.0) == []
    assert reader.flush(2.0 + R.ESC_WAIT_S / 2) == []
    assert reader.flush(2.001 + R.ESC_WAIT_S) == [R.ESC]
    assert reader.flush(3.0) == []
    assert reader.feed("\x1bq", 4.0) == [R.ESC, "q"]  # an Esc then a key, in one read
    assert reader.feed("\x1b\x1b[D", 4.0) == [R.ESC, R.LEFT]
    assert reader.feed("\x1b[", 5.0) == [] and reader.flush(6.0) == [R.ESC, "["]


def test_panel_keys_turn_the_encoder_and_press_select_and_back():
    con, clock = _console()
    con.handle(con.reader.feed("\x1b[C\x1b[C.>", clock()))  # four right: one message
    con.handle(con.reader.feed(",\x1b[D", clock()))
    assert con.device.sent == [("encoder", 4), ("encoder", -2)]

    con.device.sent.clear()
    con.handle(con.reader.feed("\r", clock()))
    assert con.device.sent == [("select", True)]
    assert con.input_segments()[-2] == ("select DOWN", "7")
    # Released once it was down PRESS_MIN_S and the device saw it for PRESS_SEEN_S of its time.
    _snapshot(con, 10.0, select=True)
    clock.now += run_mod.PRESS_MIN_S
    con.release_buttons(clock())
    assert con.device.sent == [("select", True)]  # the device's time has not moved
    _snapshot(con, 10.0 + run_mod.PRESS_SEEN_S + 0.01, select=True)
    con.release_buttons(clock())
    assert con.device.sent == [("select", True), ("select", False)]

    # Typed while select is not yet up as long: back, then a turn, in the order typed.
    con.device.sent.clear()
    con.handle(con.reader.feed("\x7f\x1b[C", clock()))
    assert con.device.sent == []
    _snapshot(con, 10.2, select=False)
    clock.now += run_mod.PRESS_MIN_S
    _snapshot(con, 10.2 + run_mod.PRESS_SEEN_S + 0.01, select=False)
    con.release_buttons(clock())
    assert con.device.sent == [("back", True)]
    _snapshot(con, 10.5, back=True)
    clock.now += run_mod.PRESS_MIN_S
    _snapshot(con, 10.5 + run_mod.PRESS_SEEN_S + 0.01, back=True)
    con.release_buttons(clock())
    _snapshot(con, 10.7, back=False)
    clock.now += run_mod.PRESS_MIN_S
    _snapshot(con, 10.7 + run_mod.PRESS_SEEN_S + 0.01, back=False)
    con.release_buttons(clock())
    assert con.device.sent == [("back", True), ("back", False), ("encoder", 1)]

    # Esc is back too, once nothing follows it.
    con.device.sent.clear()
    con.handle(con.reader.feed("\x1b", clock()))
    con.handle(con.reader.flush(clock() + 2 * run_mod.ESC_WAIT_S))
    assert con.device.sent == [("back", True)]


def test_without_a_panel_no_panel_keys():
    con, clock = _console(panel=False)
    con.handle(con.reader.feed("\x1b[C.\r\x7f", clock()))
    con.handle(con.reader.flush(clock() + 1))
    assert con.device.sent == []
    lines = con.live_lines()
    assert not any("turn" in line or "panel" in line for line in lines), lines
    assert any("q quit" in line for line in lines)


def test_the_encoder_goes_over_the_control_channel_as_a_number():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as world, VirtualPanel() as panel:
        world.bind(("127.0.0.1", 0))
        world.settimeout(5)
        device = run_mod.Device.__new__(run_mod.Device)  # the channel, no interpreter
        device.panel = panel
        assert device.world is None and not device.send("key", True)  # nobody to send to yet
        world.sendto(b'{"hello": 1}', ("127.0.0.1", panel.port))
        select.select([panel], [], [], 5)
        assert device.datagrams() == [{"hello": 1}] and device.world == world.getsockname()
        assert device.send("encoder", -3) and device.send("select", 1)
        assert json.loads(world.recv(512)) == {"input": "encoder", "value": -3}
        assert json.loads(world.recv(512)) == {"input": "select", "value": True}


def test_the_selection_in_words():
    name = run_mod.selection_name
    assert name({"protocol": "knee", "skin_type": 5}) == "knee, skin type V"
    assert name({"protocol": "hip"}) == "hip"
    assert name({"power_w": 5.0, "dose_j_cm2": 4.0, "area_cm2": 25.0}) == "custom treatment"
    assert name(None) is None


KNEE = "knee, skin type V"


@pytest.mark.parametrize("status, kwargs, text", [
    ({}, {}, "Starting..."),
    ({"state": "BOOT"}, {}, "Starting: self-test"),
    ({"state": "STANDBY", "target_j": 1000.0}, {}, KNEE + " - STANDBY - 1000 J to give"),
    ({"state": "STANDBY", "target_j": 1000.0, "locked": "calibration overdue"}, {},
     KNEE + " - STANDBY - 1000 J to give - arming locked: calibration overdue"),
    ({"state": "READY"}, {"ready_left_s": 1.44}, "READY: emission possible in 1.4 s - " + KNEE),
    ({"state": "READY"}, {"ready_left_s": 0.0}, "READY: press the footswitch to emit - " + KNEE),
    ({"state": "READY"}, {"ready_left_s": 0.0, "footswitch": True},
     "READY: release the footswitch, then press it - " + KNEE),
    ({"state": "EMITTING", "power_w": 8.0, "delivered_j": 412.34, "target_j": 1000.0,
      "temp_c": 31.24, "thermal": "NORMAL", "alarm": "NONE"}, {},
     KNEE + " - EMITTING 8.0 W - 412.3 of 1000 J - 1:14 left - heatsink 31.2 C"),
    ({"state": "EMITTING", "power_w": 6.4, "delivered_j": 412.3, "target_j": 1000.0,
      "temp_c": 48.0, "thermal": "DERATE", "derate_pct": 80, "alarm": "MEDIUM",
      "silenced": True}, {},
     KNEE + " - EMITTING 6.4 W - 412.3 of 1000 J - 1:32 left - heatsink 48.0 C - power cut to "
     "80% - MEDIUM alarm (silenced)"),
    ({"state": "PAUSED", "power_w": 0.0, "delivered_j": 412.3, "target_j": 1000.0,
      "temp_c": 31.2}, {"paused_w": 8.0},
     KNEE + " - PAUSED - 412.3 of 1000 J - 1:14 left - hold the footswitch to go on - "
     "heatsink 31.2 C"),
    ({"state": "COMPLETE", "delivered_j": 1000.04, "target_j": 1000.0}, {},
     "COMPLETE: 1000.0 J given - " + KNEE),
    ({"state": "FAULT", "fault": "ESTOP", "alarm": "HIGH"}, {},
     "FAULT: E-stop pressed - release it, then press reset - HIGH alarm"),
    ({"state": "FAULT", "fault": "THERMISTOR_OPEN"}, {},
     "FAULT: Temp sensor fail (open circuit) - call service"),
    ({"state": "FAULT", "fault": "SOMETHING_NEW"}, {}, "FAULT: SOMETHING_NEW"),
    ({"ev": "halt", "state": "EMITTING", "delivered_j": 12.0}, {},
     "STOPPED: the firmware's loop ended, laser off - 12.0 J given"),
])
def test_the_operator_line_in_plain_words(status, kwargs, text):
    line = run_mod.operator_text(status, KNEE, **kwargs)
    assert line == text
    assert "{" not in line and "permit" not in line


def test_the_operator_line_from_the_firmware_lines():
    """The console's own figures: the name from the device's treatment file, the warning's
    countdown by the firmware's clock, a pause's time left at the power it had."""
    con, _ = _console(selection={"protocol": "knee", "skin_type": 5})
    line = con.firmware_line
    _snapshot(con, 1.0)
    line('{"ev": "state", "t_ms": 1000, "state": "STANDBY", "target_j": 1000.0}')
    assert _operator(con) == KNEE + " - STANDBY - 1000 J to give"
    _snapshot(con, 5.0)
    line('{"ev": "state", "t_ms": 5000, "state": "READY", "target_j": 1000.0}')
    assert _operator(con) == "READY: emission possible in 2.0 s - " + KNEE
    _snapshot(con, 5.5)  # the world's time goes on between the firmware's lines
    assert _operator(con) == "READY: emission possible in 1.5 s - " + KNEE
    line('{"ev": "status", "t_ms": 6250, "state": "READY", "target_j": 1000.0}')
    assert _operator(con) == "READY: emission possible in 0.8 s - " + KNEE
    _snapshot(con, 9.0)
    assert _operator(con) == "READY: press the footswitch to emit - " + KNEE
    line('{"ev": "state", "t_ms": 7000, "state": "EMITTING", "power_w": 8.0, '
         '"delivered_j": 0.0, "target_j": 1000.0, "temp_c": 25.0}')
    assert _operator(con) == KNEE + " - EMITTING 8.0 W - 0.0 of 1000 J - 2:05 left - " \
        "heatsink 25.0 C"
    line('{"ev": "state", "t_ms": 9000, "state": "PAUSED", "power_w": 0.0, '
         '"delivered_j": 16.0, "target_j": 1000.0, "temp_c": 25.5}')
    assert _operator(con) == KNEE + " - PAUSED - 16.0 of 1000 J - 2:03 left - hold the " \
        "footswitch to go on - heatsink 25.5 C"


def _operator(con):
    return run_mod.operator_text(con.status, run_mod.selection_name(
        con.device.selection()), ready_left_s=con.ready_left_s(),
        footswitch=con.level("footswitch"), paused_w=con.emitting_w)


@pytest.mark.parametrize("size, rows", [((120, 50), 32), ((100, 24), 16), ((80, 24), 16),
                                        ((60, 24), None), ((100, 12), None)])
def test_the_layout_fits_the_terminal(size, rows):
    con, _ = _console(size=size, selection={"protocol": "knee", "skin_type": 5})
    _snapshot(con, 3.0, _pattern(), key=True)
    con.firmware_line('{"ev": "status", "t_ms": 3000, "state": "STANDBY", "target_j": 1000.0}')
    lines = con.live_lines()
    plain = [ANSI.sub("", line) for line in lines]
    assert len(lines) < size[1]  # a row for the log at least
    assert all(len(line) < size[0] for line in plain), plain
    assert (drawn_panel(plain) and len(drawn_panel(plain))) == rows
    if rows:
        assert image_of(drawn_panel(plain)) == _pattern()
    else:
        assert any(line.startswith("display hidden") for line in plain), plain
    assert any(line.startswith(KNEE + " - STANDBY") for line in plain), plain
    assert any("q quit" in line for line in plain)


def test_the_display_is_drawn_again_only_when_it_changed():
    con, clock = _console()
    vt = Vt(100, 24)

    def shows():
        vt.feed("".join(con.screen.out))
        con.screen.out.clear()
        live = con.live_lines()
        block = vt.lines()[vt.row + 1 - len(live):vt.row + 1]  # the cursor is on its last row
        assert block == [line.rstrip() for line in live]

    con.note("a line of the log")
    _snapshot(con, 1.0, _pattern())
    con.redraw(force=True)
    assert "\u2502" in "".join(con.screen.out)
    shows()
    _snapshot(con, 1.1, _pattern())  # the same image, a new time
    clock.now += 1
    con.redraw()
    again = "".join(con.screen.out)
    assert "t 1.1 s" in again and again.count("\x1b[2K") == 1  # only the line that changed
    shows()
    changed = bytearray(_pattern())
    changed[5] ^= 0xFF  # column 5 of the top 8 rows: the frame's first two rows
    changed[display.BYTES - 1] ^= 0x80  # the bottom right pixel
    _snapshot(con, 1.2, bytes(changed))
    clock.now += 1
    con.redraw()
    # the two rows of braille of the top 8 pixel rows, the time beside the display, the bottom
    assert "".join(con.screen.out).count("\x1b[2K") == 4
    shows()
    assert "a line of the log" in "\n".join(vt.lines())
    # A resize: the block is drawn whole again, the log from the history above it.
    con.screen.cols, con.screen.lines = 120, 50
    vt = Vt(120, 50)
    con.rebuild = True
    con.redraw(force=True)
    shows()
    assert len(drawn_panel(vt.lines())) == 32
    assert "a line of the log" in "\n".join(vt.lines())


def test_the_engineer_lines_toggle():
    con, _ = _console()
    con.firmware_line('{"ev": "status", "t_ms": 3000, "state": "STANDBY", "permit": false}')
    assert any("permit no" in line for line in con.live_lines())
    con.handle(["d"])
    assert not any("permit no" in line for line in con.live_lines())

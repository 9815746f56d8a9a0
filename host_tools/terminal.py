"""Shared: `laserctl run`'s terminal: a raw keyboard and a plain-ANSI screen whose bottom lines
are redrawn in place while a log scrolls above them. Standard library only."""

import contextlib
import errno
import os
import select
import termios


class Screen:
    """A block of live lines at the bottom of the terminal, with a log scrolling above it.

    Every line is cut to the terminal's width so that none wraps: the block is then exactly as many
    rows as it has lines, and moving the cursor up that many rows finds its start again."""

    def __init__(self, fd, color=True):
        self.fd = fd
        self.color = color
        self.rows = 0  # rows of the live block currently on the screen
        self.shown = []  # its lines
        self.gone = False  # the terminal hung up: nothing more to draw

    def size(self):
        try:
            cols, lines = os.get_terminal_size(self.fd)
        except OSError:
            cols, lines = 0, 0
        return max(20, cols or 80), max(5, lines or 24)

    def width(self):
        return self.size()[0] - 1  # never write into the last column (auto-wrap)

    def clear(self):
        """Start again on an empty screen (after a resize the terminal may have reflowed the
        block, so it can no longer be found by counting rows)."""
        self.write("\x1b[H\x1b[2J")
        self.rows = 0
        self.shown = []

    def style(self, text, sgr):
        if not sgr or not self.color:
            return text
        return "\x1b[%sm%s\x1b[0m" % (sgr, text)

    def wrap(self, segments, width, sep="  "):
        """Segments (text, sgr) joined by `sep`, wrapped between segments into as few lines of at
        most `width` as they need, balanced (no lone last segment when two lines are needed)."""
        count = len(self._wrap(segments, width, sep))
        longest = max((len(text) for text, _ in segments), default=0)
        while count > 1 and width > longest and len(self._wrap(segments, width - 1, sep)) == count:
            width -= 1
        return self._wrap(segments, width, sep)

    def _wrap(self, segments, width, sep):
        lines, line, used = [], [], 0
        for text, sgr in segments:
            text = text[:width]
            extra = len(text) + (len(sep) if line else 0)
            if line and used + extra > width:
                lines.append(sep.join(line))
                line, used = [], 0
                extra = len(text)
            line.append(self.style(text, sgr))
            used += extra
        if line:
            lines.append(sep.join(line))
        return lines

    def draw(self, live, log=()):
        """Print `log` lines (text, sgr) above the block, then redraw the block `live` (lines).
        Where nothing is printed above it and the block keeps its height, only the lines that
        changed are written again (a big block, such as a display drawn in characters, is then
        not sent whole many times a second)."""
        if not log and self.rows and len(live) == self.rows == len(self.shown):
            changed = [i for i, line in enumerate(live) if line != self.shown[i]]
            if changed:
                row = self.rows - 1  # the cursor is on the block's last row
                out = ["\r\x1b[%dA" % (row - changed[0]) if row > changed[0] else "\r"]
                row = changed[0]
                for i in changed:
                    if i > row:
                        out.append("\r\x1b[%dB" % (i - row))
                    out.append("\x1b[2K" + live[i])
                    row = i
                if row < self.rows - 1:
                    out.append("\x1b[%dB" % (self.rows - 1 - row))
                self.shown = list(live)
                self.write("".join(out))
            return
        width = self.width()
        out = ["\r"]
        if self.rows > 1:
            out.append("\x1b[%dA" % (self.rows - 1))
        out.append("\x1b[J")
        for text, sgr in log:
            out.append(self.style(text[:width], sgr) + "\r\n")
        out.append("\r\n".join(live))
        self.rows = len(live)
        self.shown = list(live)
        self.write("".join(out))

    def write(self, text):
        data = text.encode("utf-8", "replace")
        while data and not self.gone:
            try:
                n = os.write(self.fd, data)
            except InterruptedError:
                continue
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)
                continue
            except OSError as e:
                if e.errno not in (errno.EIO, errno.EPIPE, errno.ENXIO):
                    raise
                self.gone = True  # the terminal was closed; the console still shuts down
                return
            data = data[n:]


class RawTerminal:
    """Keys arrive one by one, unechoed; Ctrl-C arrives as a key (not as a signal to the
    process group), output processing stays on. `restore` puts every setting back."""

    def __init__(self, fd):
        self.fd = fd
        self.saved = None

    def enter(self):
        self.saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[0] &= ~(termios.IXON | termios.ICRNL | termios.INLCR | termios.IGNCR)  # iflag
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)  # lflag
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def restore(self):
        if self.saved is not None:
            with contextlib.suppress(termios.error, OSError):  # unless the terminal is gone
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None



def color_wanted(fd):
    return (os.isatty(fd) and "NO_COLOR" not in os.environ
            and os.environ.get("TERM", "") not in ("", "dumb"))

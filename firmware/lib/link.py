# The serial link's framing, both ways. In: bytes from the USB serial port, one request per line.
# Polled once a tick, the reader takes only what is waiting (never blocks the loop), at most
# `budget` bytes a tick, and stops at the end of a line: one request is handled per tick. A line
# longer than the limit is not a request: it is discarded up to its end and reported as TOO_LONG;
# an empty line is not one either, and is skipped.
# A request is printable ASCII: a line holding any other byte (0x03 among them, which is data here
# and never a KeyboardInterrupt: boot.py turns the REPL's interrupt character off) is NOT_TEXT.
# Out: every line the firmware writes is JSON in pure ASCII (dumps), so valid UTF-8 whatever
# bytes a request or a file on the flash held. While the loop runs, lines go out through the
# Outbox: on the chip a write to the REPL's UART waits while its 128-byte FIFO is full (about 30 ms
# for a 450-byte line at 115200 baud, three ticks in which no input is read), so the loop queues
# whole lines and hands the hardware module, each tick, only what the FIFO takes without waiting.
import json
import sys

from micropython import const

TOO_LONG = "too long"
NOT_TEXT = "not text"
# The output queues, allocated once (docs/serial.md, "Output"). Events: two state changes in a row
# (PAUSED, then FAULT) with the fault and session lines are about 900 bytes. Lines: a status line
# (~350) and the status reply (~750); a reply longer than this queue goes out from its own text.
EVENT_QUEUE_BYTES = const(1024)
LINE_QUEUE_BYTES = const(1024)
_HEADER = const(2)  # each queued line is preceded by its length (big-endian, the "\n" counted)
_LONG = object()  # Outbox._sending while the long line goes out
_NEWLINE = b"\n"

# json.dumps as MicroPython's writes: every character as it is. CPython's (the host's tests) would
# escape what is beyond ASCII by itself, a lone surrogate as one too; told not to, it leaves that
# to dumps() below, alike on both interpreters.
try:
    json.dumps("", ensure_ascii=False)
except TypeError:  # MicroPython: no such argument
    _raw_dumps = json.dumps
else:

    def _raw_dumps(obj):
        return json.dumps(obj, ensure_ascii=False)


class LineReader:
    """`read_byte()` returns the next waiting byte, or -1 when none is waiting (the hardware
    module's read_serial_byte). Tunables: `max_line` bytes per request (the buffer, allocated
    once here), `budget` bytes read per poll. After a NOT_TEXT line, `bad_byte` is the first
    byte outside printable ASCII and `bad_column` its place in the line (from 1)."""

    max_line = 512
    budget = 64

    def __init__(self, read_byte):
        self._read_byte = read_byte
        self._buf = bytearray(self.max_line)
        self._len = 0
        self._column = 0  # bytes of the line so far, also those beyond the buffer
        self._overflow = False
        self._bad_byte = -1  # this line's first byte outside printable ASCII, and its column
        self._bad_column = 0
        self.bad_byte = -1
        self.bad_column = 0

    def poll(self):
        """The next complete line (bytes, without its end), TOO_LONG, NOT_TEXT, or None: nothing
        complete yet. Allocates nothing unless a line is complete."""
        read_byte, buf = self._read_byte, self._buf
        for _ in range(self.budget):
            byte = read_byte()
            if byte < 0:
                return None
            if byte == 10:  # "\n" ends a line; a "\r" before it is dropped below
                length, self._len, self._column = self._len, 0, 0
                bad, self._bad_byte = self._bad_byte, -1
                if self._overflow:
                    self._overflow = False
                    return TOO_LONG
                if bad >= 0:
                    self.bad_byte, self.bad_column = bad, self._bad_column
                    return NOT_TEXT
                if length == 0:
                    continue  # an empty line is no request (a host's "\n" to start clean)
                return bytes(buf[:length])
            if byte == 13:
                continue
            self._column += 1
            if ((byte < 32 and byte != 9) or byte > 126) and self._bad_byte < 0:
                self._bad_byte, self._bad_column = byte, self._column
            if self._len < len(buf):
                buf[self._len] = byte
                self._len += 1
            else:
                self._overflow = True
        return None


def dumps(obj):
    """`obj` as one line of JSON in pure ASCII: what json.dumps writes, with every character
    beyond ASCII as a \\uXXXX escape (a pair for one beyond U+FFFF) and a lone surrogate as
    \\ufffd. MicroPython's json.dumps writes such characters as their raw bytes, a lone surrogate
    (from a "\\ud800" escape in a request) as bytes that are not UTF-8 at all."""
    text = _raw_dumps(obj)
    try:
        if len(text) == len(text.encode()):  # the usual case; on MicroPython this copies nothing
            return text
    except UnicodeError:  # CPython: a lone surrogate
        pass
    return _escape(text)


def _escape(text):
    out = []
    high = 0  # a high surrogate waiting for its low half
    for ch in text:
        code = ord(ch)
        if 0xDC00 <= code < 0xE000 and high:
            out.append("\\u%04x\\u%04x" % (high, code))
            high = 0
            continue
        if high:
            out.append("\\ufffd")
            high = 0
        if code < 0x80:
            out.append(ch)
        elif 0xD800 <= code < 0xDC00:
            high = code
        elif 0xDC00 <= code < 0xE000:
            out.append("\\ufffd")
        elif code > 0xFFFF:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
        else:
            out.append("\\u%04x" % code)
    if high:
        out.append("\\ufffd")
    return "".join(out)


try:
    memoryview("")
except TypeError:  # CPython: a str lends no buffer

    def _bytes(text):
        return text.encode()

else:  # MicroPython: a view of the str's own bytes, no copy

    def _bytes(text):
        return memoryview(text)


def send_line(line):
    """Write one line straight to the serial port, waiting for the UART as long as it takes. Only
    where no loop runs (boot, the halt, a maintenance boot); the loop uses an Outbox."""
    out = sys.stdout.buffer
    out.write(line.encode())
    out.write(b"\n")


class _Queue:
    """Whole lines, each behind its two-byte length, in one buffer allocated once: appended at
    `end`, sent from `start`; moved back to the front when the tail has no room for a line."""

    __slots__ = ("buf", "start", "end")

    def __init__(self, size):
        self.buf = bytearray(size)
        self.start = 0
        self.end = 0

    def free(self):
        return len(self.buf) - self.end + self.start

    def put(self, line):
        """Queue `line` (ASCII text) and its "\n"; False, queuing nothing, if it does not fit."""
        n = len(line) + 1
        if n + _HEADER > self.free():
            return False
        buf = self.buf
        if self.end + n + _HEADER > len(buf):
            used = self.end - self.start
            buf[:used] = buf[self.start:self.end]  # allocates: only on a tick that writes a line
            self.start, self.end = 0, used
        at = self.end
        buf[at] = n >> 8
        buf[at + 1] = n & 255
        buf[at + _HEADER:at + _HEADER + n - 1] = _bytes(line)
        buf[at + _HEADER + n - 1] = 10
        self.end = at + _HEADER + n
        return True


class Outbox:
    """The serial port's output while the loop runs: whole lines queued in two bounded queues,
    drained each tick (drain()) by what `write(buf, off, n, wait)` (hw.Hardware.write_serial)
    takes without waiting, i.e. what the UART's FIFO has room for; never half a line, never one
    line inside another. Events (state changes, faults, sessions, errors) have a queue of their
    own that goes first: routine lines (status lines, replies) never delay or crowd them out.

    - event(line): False when the event queue is full; the recorder then writes the event again
      at the next tick (a change is reported once its line is queued). event_once(line): an
      event written only once, dropped whole and counted in `dropped` when it does not fit.
    - line(line): a routine line; dropped whole when it does not fit, counted in `dropped`. A
      line longer than the whole queue (a long journal page, a long preset list) is kept as it
      is, its own text, and sent once the queue ahead of it is out: one at a time, taken only
      while the queue is empty (ready() sees to that for replies), else dropped.
    - ready(): whether a request may be taken now: the line queue is empty (its reply fits, or
      goes as the long line) and the event queue has room for what the request may cause. Until
      then the request waits in the port.
    - flush(): everything out, waiting for the UART: at the loop's end and before a restart.

    Drain and the queues allocate nothing (the buffers are allocated here, once)."""

    def __init__(self, write, event_bytes=EVENT_QUEUE_BYTES, line_bytes=LINE_QUEUE_BYTES):
        self._write = write
        self._events = _Queue(event_bytes)
        self._lines = _Queue(line_bytes)
        self._long = None  # a line longer than the line queue, sent from its own text
        self._sending = None  # the queue (or _LONG) whose line is partly written; None between
        self._left = 0  # bytes of that line still to write (its "\n" counted)
        self.dropped = 0  # lines dropped whole for want of room (since boot)

    def event(self, line):
        return self._events.put(line)

    def event_once(self, line):
        """An event nothing writes again (an error, a service session closed): dropped whole and
        counted when the event queue is full."""
        if self._events.put(line):
            return True
        self.dropped += 1
        return False

    def line(self, line):
        lines = self._lines
        if lines.put(line):
            return True
        if self._long is None and lines.start == lines.end and \
                len(line) + 1 + _HEADER > len(lines.buf):
            self._long = line
            return True
        self.dropped += 1
        return False

    def ready(self):
        events = self._events
        return self._long is None and self._lines.start == self._lines.end and \
            events.free() * 2 >= len(events.buf)

    def pending(self):
        """Bytes not yet written (the length headers included)."""
        long_line = 0 if self._long is None else len(self._long) + 1
        return (self._events.end - self._events.start) + \
            (self._lines.end - self._lines.start) + long_line

    def drain(self, wait=False):
        """Write what the port takes now (everything, waiting, with `wait`): events first, then
        the long line (it came before anything in the line queue), then the line queue; each
        line to its end before the next."""
        write = self._write
        while True:
            queue = self._sending
            if queue is None:
                queue = self._events
                if queue.start == queue.end:
                    if self._long is not None:
                        self._sending, self._left = _LONG, len(self._long) + 1
                        continue
                    queue = self._lines
                    if queue.start == queue.end:
                        return
                buf, at = queue.buf, queue.start
                self._left = buf[at] << 8 | buf[at + 1]
                queue.start = at + _HEADER
                self._sending = queue
            if queue is _LONG:
                text = self._long
                if self._left > 1:
                    self._left -= write(text, len(text) + 1 - self._left, self._left - 1, wait)
                    if self._left > 1:
                        return  # the FIFO is full: the rest at the next tick
                if not write(_NEWLINE, 0, 1, wait):
                    return
                self._long = self._sending = None
                self._left = 0
                continue
            written = write(queue.buf, queue.start, self._left, wait)
            queue.start += written
            self._left -= written
            if self._left:
                return  # the FIFO is full: the rest of this line at the next tick
            self._sending = None
            if queue.start == queue.end:
                queue.start = queue.end = 0

    def flush(self):
        self.drain(True)

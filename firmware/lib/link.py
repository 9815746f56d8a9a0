# The serial link's framing, both ways. In: bytes from the USB serial port, one request per line.
# Polled once a tick, the reader takes only what is waiting (never blocks the loop), at most
# `budget` bytes a tick, and stops at the end of a line: one request is handled per tick. A line
# longer than the limit is not a request: it is discarded up to its end and reported as TOO_LONG;
# an empty line is not one either, and is skipped.
# A request is printable ASCII: a line holding any other byte (0x03 among them, which is data here
# and never a KeyboardInterrupt: boot.py turns the REPL's interrupt character off) is NOT_TEXT.
# Out: every line the firmware writes is JSON in pure ASCII (dumps), so valid UTF-8 whatever
# bytes a request or a file on the flash held.
import json

TOO_LONG = "too long"
NOT_TEXT = "not text"

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

# The serial link's framing: bytes from the USB serial port, one request per line. Polled once a
# tick, it reads only what is waiting (never blocks the loop), at most `budget` bytes a tick, and
# stops at the end of a line: one request is handled per tick. A line longer than the limit is
# not a request: it is discarded up to its end and reported as TOO_LONG.
TOO_LONG = "too long"


class LineReader:
    """`read_byte()` returns the next waiting byte, or -1 when none is waiting (the hardware
    module's read_serial_byte). Tunables: `max_line` bytes per request (the buffer, allocated
    once here), `budget` bytes read per poll."""

    max_line = 512
    budget = 64

    def __init__(self, read_byte):
        self._read_byte = read_byte
        self._buf = bytearray(self.max_line)
        self._len = 0
        self._overflow = False

    def poll(self):
        """The next complete line (bytes, without its end), TOO_LONG, or None: nothing complete
        yet. Allocates nothing unless a line is complete."""
        read_byte, buf = self._read_byte, self._buf
        for _ in range(self.budget):
            byte = read_byte()
            if byte < 0:
                return None
            if byte == 10:  # "\n" ends a line; a "\r" before it is dropped below
                length, self._len = self._len, 0
                if self._overflow:
                    self._overflow = False
                    return TOO_LONG
                return bytes(buf[:length])
            if byte == 13:
                continue
            if self._len < len(buf):
                buf[self._len] = byte
                self._len += 1
            else:
                self._overflow = True
        return None

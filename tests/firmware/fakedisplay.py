# An SSD1306 as panel.py drives it through micropython-lib's driver: a framebuf.FrameBuffer (the
# driver's own base) whose write_cmd and write_data reach a model of the display's RAM, in the
# horizontal addressing mode the driver sets. The virtual device's model of the whole chip is
# host_tools/vdevice/mpy/sim_display.py; this one is the firmware tests' own, on both
# interpreters, and reads the text back from the RAM with the font this interpreter's framebuf
# draws.
import framebuf

FULL = "\u2588"  # a fully lit cell: the panel's progress bar


class FakeDisplay(framebuf.FrameBuffer):
    """Allocates nothing itself, so that a test can weigh what the panel allocates."""

    def __init__(self):
        self.buffer = bytearray(1024)
        super().__init__(self.buffer, 128, 64, framebuf.MONO_VLSB)
        self.ram = bytearray(1024)  # what the display shows
        self._command = 0  # a range command (0x21, 0x22) waiting for its arguments ...
        self._args = bytearray(2)  # ... and those it has
        self._got = 0
        self._columns = bytearray(b"\x00\x7f")
        self._pages = bytearray(b"\x00\x07")
        self._column = self._page = 0
        self.data_writes = 0  # write_data calls ...
        self.data_bytes = 0  # ... and their bytes, all told
        self.commands = 0
        self.fail = False  # the display stops answering (OSError, as a missing I2C device)
        self.i2c = self  # the driver's bus and the display's address on it
        self.addr = 0x3C

    def writeto(self, addr, buf):
        """A transaction on the bus: a control byte, then commands (0x00) or data (0x40)."""
        if self.fail:
            raise OSError(19)
        if buf[0] == 0x40:
            self.write_data(memoryview(buf)[1:])
            return
        for i in range(1, len(buf)):
            self.write_cmd(buf[i])

    def write_cmd(self, cmd):
        if self.fail:
            raise OSError(19)
        self.commands += 1
        if not self._command:
            if cmd == 0x21 or cmd == 0x22:
                self._command, self._got = cmd, 0
            return
        self._args[self._got] = cmd
        self._got += 1
        if self._got == 2:
            target = self._columns if self._command == 0x21 else self._pages
            target[0], target[1] = self._args[0], self._args[1]
            if self._command == 0x21:
                self._column = self._args[0]
            else:
                self._page = self._args[0]
            self._command = 0

    def write_data(self, buf):
        if self.fail:
            raise OSError(19)
        self.data_writes += 1
        self.data_bytes += len(buf)
        for b in buf:
            self.ram[self._page * 128 + self._column] = b
            self._column += 1
            if self._column > self._columns[1]:
                self._column = self._columns[0]
                self._page = self._page + 1 if self._page < self._pages[1] else self._pages[0]

    def lines(self):
        """The 8 rows of 16 characters the display shows (trailing spaces stripped)."""
        glyphs = _glyphs()
        rows = []
        for page in range(8):
            row = ""
            for col in range(16):
                cell = bytes(self.ram[page * 128 + col * 8:page * 128 + col * 8 + 8])
                row += glyphs.get(cell, FULL if cell == b"\xff" * 8 else "?")
            rows.append(row.rstrip())
        return rows

    def text_shown(self):
        return "\n".join(self.lines())


_GLYPHS = {}


def _glyphs():
    if not _GLYPHS:
        for code in range(32, 127):
            cell = bytearray(8)
            framebuf.FrameBuffer(cell, 8, 8, framebuf.MONO_VLSB).text(chr(code), 0, 0, 1)
            _GLYPHS.setdefault(bytes(cell), chr(code))
    return _GLYPHS

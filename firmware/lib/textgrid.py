# A screen of text on an SSD1306, kept in step with the display a bounded piece at a time: 8 rows
# of 16 cells of framebuf's own 8x8 font (the panel's screens, panel.py and screens.py).
#
# `want` is the screen to show, `shown` what the display shows: a cell is a character code, or
# FULL for a lit cell (a progress bar). A row is composed into `want` (begin, put, num, clock,
# end), which marks the chunks of cells that now differ; draw() then draws one such chunk (4
# cells, 32 columns of one page) and sends it over I2C: its address range in one command
# transaction on the driver's bus, its 32 bytes with the driver's own write_data. Nothing here
# allocates: the text comes as bytes, numbers are written digit by digit.
#
# The driver's 1 KB frame buffer is this grid's memory. The display's own RAM holds the image, and
# show(), which would send the whole buffer (25 ms at 400 kHz), is never called after the driver's
# init: so `want`, `shown` and the chunk being drawn live in that buffer (memoryviews of it)
# instead of beside it, on a chip whose heap has no kilobyte to spare (docs/chip.md).
import framebuf
from micropython import const

ROWS = const(8)
COLS = const(16)
CHUNK = const(4)  # cells drawn and sent per draw(): 32 columns of a page, ~1.2 ms at 400 kHz
FULL = const(127)  # a fully lit cell
_SPACE = const(32)
# framebuf's font, in code order from the space: text() with an offset draws just one of them.
_FONT = (" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqr"
         "stuvwxyz{|}~")


class TextGrid:
    """`display`: an SSD1306 (a framebuf.FrameBuffer 128x64 with `buffer`, write_cmd and
    write_data), cleared (init_display leaves it so). Its frame buffer is the grid's from now on:
    nothing may draw on `display` itself."""

    def __init__(self, display):
        self.display = display
        memory = memoryview(display.buffer)
        cells = ROWS * COLS
        self.want = memory[:cells]
        self.shown = memory[cells:2 * cells]
        for i in range(2 * cells):
            memory[i] = _SPACE  # the display shows a blank screen
        at = 2 * cells
        self._chunk = memory[at:at + CHUNK * 8]  # the 32 columns being sent: one page tall
        self._chunk_fb = framebuf.FrameBuffer(self._chunk, CHUNK * 8, 8, framebuf.MONO_VLSB)
        at += CHUNK * 8
        self._cell = framebuf.FrameBuffer(memory[at:at + 8], 8, 8, framebuf.MONO_VLSB)
        at += 8
        self._dirty = memory[at:at + ROWS]  # per row, a bit per chunk of cells that differ
        for i in range(ROWS):
            self._dirty[i] = 0
        # The column and page range of a chunk: six command bytes in one I2C transaction (control
        # byte 0x00: commands follow), where the driver's write_cmd makes a transaction of each:
        # 74 bits on the bus instead of 174, one call instead of six.
        self._commands = bytearray(b"\x00\x21\x00\x1f\x22\x00\x00")
        self._at = 0  # where in `want` the next character goes
        self._end = COLS  # the end of the row being composed

    # -- composing a row -----------------------------------------------------------------------

    def begin(self, row):
        """Compose row `row` afresh: blank, the cursor at its first cell."""
        at = row * COLS
        want = self.want
        for i in range(at, at + COLS):
            want[i] = _SPACE
        self._at, self._end = at, at + COLS

    def put(self, text, col=-1):
        """`text` (bytes) at the cursor, or at column `col`; what passes the row's end is cut."""
        want, end = self.want, self._end
        at = self._at if col < 0 else end - COLS + col
        for b in text:
            if at < end:
                want[at] = b
                at += 1
        self._at = at

    def num(self, value, decimals=0):
        """The whole number `value` / 10**decimals, with that many decimals. Left out where it
        does not fit in the row."""
        negative = value < 0
        value = -value if negative else value
        digits, scale = 1, 10
        while scale <= value:
            digits += 1
            scale *= 10
        if digits <= decimals:
            digits = decimals + 1  # 0.5, not .5
        end = self._at + digits + (1 if decimals else 0) + (1 if negative else 0)
        if end > self._end:
            return
        want, i = self.want, end - 1
        for k in range(digits):
            if decimals and k == decimals:
                want[i] = 46  # "."
                i -= 1
            want[i] = 48 + value % 10
            value //= 10
            i -= 1
        if negative:
            want[i] = 45  # "-"
        self._at = end

    def clock(self, seconds):
        """m:ss, or h:mm:ss from an hour."""
        if seconds >= 3600:
            self.num(seconds // 3600)
            self.put(b":")
            seconds %= 3600
            self._two(seconds // 60)
        else:
            self.num(seconds // 60)
        self.put(b":")
        self._two(seconds % 60)

    def _two(self, value):
        if value < 10:
            self.put(b"0")
        self.num(value)

    def bar(self, cells):
        """`cells` lit cells from the cursor: a progress bar."""
        want = self.want
        for i in range(self._at, min(self._end, self._at + cells)):
            want[i] = FULL

    def end(self, row):
        """The row is composed: mark its chunks that now differ from the display."""
        # (Never more than three names in one assignment: four build a tuple on the heap.)
        want, shown = self.want, self.shown
        at, mask = row * COLS, 0
        for i in range(COLS):
            if want[at + i] != shown[at + i]:
                mask |= 1 << (i // CHUNK)
        self._dirty[row] = mask

    # -- drawing -------------------------------------------------------------------------------

    def draw(self):
        """Draw and send the first chunk that differs, if any: into the frame buffer with
        framebuf's own font, then to the display. OSError if the display does not answer."""
        dirty = self._dirty
        for row in range(ROWS):
            mask = dirty[row]
            if mask:
                break
        else:
            return
        chunk = 0
        while not mask & 1 << chunk:
            chunk += 1
        dirty[row] = mask & ~(1 << chunk)
        fb, cell = self._chunk_fb, self._cell
        want, shown = self.want, self.shown
        first = row * COLS + chunk * CHUNK
        for k in range(CHUNK):  # every cell of the chunk: it is sent whole
            code = want[first + k]
            if code == FULL:
                fb.fill_rect(k * 8, 0, 8, 8, 1)
            else:
                cell.fill(0)
                cell.text(_FONT, (_SPACE - code) * 8, 0, 1)  # only this code's glyph lands
                fb.blit(cell, k * 8, 0)
            shown[first + k] = code
        commands = self._commands
        commands[2] = chunk * CHUNK * 8  # the columns ...
        commands[3] = commands[2] + CHUNK * 8 - 1
        commands[5] = commands[6] = row  # ... and the page the data fills
        display = self.display
        display.i2c.writeto(display.addr, commands)
        display.write_data(self._chunk)

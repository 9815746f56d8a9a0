# The operator panel's display on the virtual device: a 128x64 SSD1306 OLED controller as its
# datasheet (Solomon Systech SSD1306 rev 1.1) describes it, fed the bytes of each I2C write to its
# address (sim_machine.I2C), and the image a person sees on the glass. The world (simworld) owns
# one and records what it shows; a reset of the ESP32 leaves it as it is (the firmware initialises
# it again), a power cut returns its registers to their power-on values (dark).
#
# An I2C write is a control byte, then bytes: Co = bit 7, D/C# = bit 6. Co = 1: one byte follows
# (a command, or with D/C# a data byte), then another control byte. Co = 0: every byte to the
# stop is a command (D/C# = 0) or display RAM data (D/C# = 1). A command's arguments may come in
# later writes (the micropython-lib driver sends every byte in a write of its own).
#
# The image as seen is kept as the framebuffer is (MONO_VLSB: byte page * 128 + x, bit y % 8,
# x from the viewer's left, y from the top), oriented so that the driver's settings (segment
# remap A1, COM scan C8, start line 0, no offset, 64 MUX, alternative COM pins) show the RAM as
# it is: RAM column c at x = c, RAM row r at y = r. Scrolling (26h-2Fh, A3h) is accepted and not
# shown.
#
# Allocation-free where the firmware's tick calls it (write), as the chip's I2C driver is: the
# bench counts every byte allocated during a tick as the firmware's.

import binascii

WIDTH = 128
HEIGHT = 64
BYTES = WIDTH * HEIGHT // 8
HORIZONTAL, VERTICAL, PAGE = 0, 1, 2  # 20h's modes

# Commands with arguments: how many follow the command byte.
_ARGS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xAD: 1, 0xD3: 1, 0xD5: 1,
         0xD6: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1, 0xA3: 2, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5,
         0x2C: 6, 0x2D: 6}
# What the parser expects next within one write.
_CONTROL, _ONE_COMMAND, _ONE_DATA, _COMMANDS, _DATA = 0, 1, 2, 3, 4
_DARK_ROW = 0xFF  # in a row map: no RAM row (not scanned)
_JOIN = 4  # changes() joins two runs fewer than this many equal bytes apart


def changes(old, new):
    """Where image `new` differs from image `old` (both BYTES long, MONO_VLSB), as text: runs
    "OFFSET:HEX" (the offset in decimal, the bytes of `new` from there), apart by a space; runs
    fewer than _JOIN equal bytes apart are one. "" where they are the same. `old` becomes `new`.
    The trace keeps a screen this way: a second's countdown is a few bytes, not a frame."""
    runs = []
    i = 0
    while i < BYTES:
        if old[i] == new[i]:
            i += 1
            continue
        last = j = i
        while j < BYTES and j - last <= _JOIN:
            if old[j] != new[j]:
                last = j
            j += 1
        part = new[i:last + 1]
        old[i:last + 1] = part
        runs.append("%d:%s" % (i, binascii.hexlify(part).decode()))
        i = last + 1
    return " ".join(runs)


class Ssd1306:
    def __init__(self):
        self.ram = bytearray(BYTES)  # the GDDRAM (at power-on its content is undefined: zeros)
        self._args = bytearray(6)  # a command's arguments so far
        self._rows = bytearray(HEIGHT)  # image(): the RAM row each screen row shows
        self._expect = _CONTROL
        self.power_on_reset()

    def power_on_reset(self):
        """Every register to its reset value (datasheet, table 9-1): display off, page
        addressing, contrast 7Fh, no remaps, 64 MUX, alternative COM pins, charge pump off. The
        RAM keeps what it holds."""
        self.on = False  # AEh / AFh
        self.charge_pump = False  # 8Dh 14h: the panel's supply, without which nothing lights
        self.mode = PAGE
        self.col_start, self.col_end = 0, WIDTH - 1
        self.page_start, self.page_end = 0, HEIGHT // 8 - 1
        self.col = self.page = 0  # the RAM pointer
        self.page_col_start = 0  # 00h-1Fh: page addressing's column start
        self.contrast = 0x7F
        self.entire_on = False  # A5h
        self.inverted = False  # A7h
        self.seg_remap = False  # A1h: RAM column 127 drives SEG0
        self.com_remap = False  # C8h: scan from COM[N-1] to COM0
        self.start_line = 0  # 40h-7Fh
        self.offset = 0  # D3h
        self.mux = HEIGHT  # A8h: N
        self.com_pins = 0x12  # DAh: alternative COM pins, no left/right remap
        self.scrolling = False
        self._command = -1  # waiting for this command's arguments (-1: none)
        self._need = self._got = 0

    # -- the I2C bytes -----------------------------------------------------------------------

    def begin(self):
        """A write to the address begins: a control byte comes first."""
        self._expect = _CONTROL

    def feed(self, buf):
        """The next bytes of the present write. Returns whether the image may have changed (a
        byte of RAM, or a register that decides what is shown)."""
        changed = False
        expect = self._expect
        i, n = 0, len(buf)
        while i < n:
            if expect == _DATA:
                if self._data(buf, i, n):
                    changed = True
                break
            b = buf[i]
            i += 1
            if expect == _CONTROL:
                if b & 0x80:
                    expect = _ONE_DATA if b & 0x40 else _ONE_COMMAND
                else:
                    expect = _DATA if b & 0x40 else _COMMANDS
            elif expect == _COMMANDS:
                if self._byte(b):
                    changed = True
            elif expect == _ONE_COMMAND:
                if self._byte(b):
                    changed = True
                expect = _CONTROL
            else:  # _ONE_DATA
                if self._store(b):
                    changed = True
                expect = _CONTROL
        self._expect = expect
        return changed

    def write(self, buf):
        """One whole write (what I2C.writeto sends after the address)."""
        self.begin()
        return self.feed(buf)

    # -- commands ----------------------------------------------------------------------------

    def _byte(self, b):
        """A command byte: a command, or the next argument of the one before."""
        if self._command >= 0:
            self._args[self._got] = b
            self._got += 1
            if self._got < self._need:
                return False
            command, self._command = self._command, -1
            return self._with_args(command)
        need = _ARGS.get(b, 0)
        if need:
            self._command, self._need, self._got = b, need, 0
            return False
        return self._simple(b)

    def _simple(self, b):
        """A one-byte command. Returns whether it may change the image."""
        if b <= 0x0F:  # page addressing: lower nibble of the column start
            self.page_col_start = (self.page_col_start & 0xF0) | b
            self.col = self.page_col_start
        elif b <= 0x1F:  # page addressing: upper nibble
            self.page_col_start = ((b & 0x07) << 4) | (self.page_col_start & 0x0F)
            self.col = self.page_col_start
        elif b == 0x2E:
            self.scrolling = False
        elif b == 0x2F:
            self.scrolling = True
        elif 0x40 <= b <= 0x7F:
            return self._set("start_line", b & 0x3F)
        elif b == 0xA0 or b == 0xA1:
            return self._set("seg_remap", b == 0xA1)
        elif b == 0xA4 or b == 0xA5:
            return self._set("entire_on", b == 0xA5)
        elif b == 0xA6 or b == 0xA7:
            return self._set("inverted", b == 0xA7)
        elif b == 0xAE or b == 0xAF:
            return self._set("on", b == 0xAF)
        elif 0xB0 <= b <= 0xB7:
            self.page = b & 0x07
        elif b == 0xC0 or b == 0xC8:
            return self._set("com_remap", b == 0xC8)
        return False  # E3h (NOP) and the rest: nothing seen

    def _with_args(self, command):
        a = self._args
        if command == 0x20:
            if a[0] & 0x03 != 0x03:  # 11b is invalid: no change
                self.mode = a[0] & 0x03
        elif command == 0x21:
            self.col_start, self.col_end = a[0] & 0x7F, a[1] & 0x7F
            self.col = self.col_start
        elif command == 0x22:
            self.page_start, self.page_end = a[0] & 0x07, a[1] & 0x07
            self.page = self.page_start
        elif command == 0x81:
            self.contrast = a[0]
        elif command == 0x8D:
            return self._set("charge_pump", bool(a[0] & 0x04))
        elif command == 0xA8:
            if a[0] & 0x3F >= 15:  # 0-14 are invalid
                return self._set("mux", (a[0] & 0x3F) + 1)
        elif command == 0xD3:
            return self._set("offset", a[0] & 0x3F)
        elif command == 0xDA:
            return self._set("com_pins", a[0] & 0x30 | 0x02)
        return False  # timing, scrolling, VCOMH, IREF, zoom: nothing the image shows here

    def _set(self, name, value):
        if getattr(self, name) == value:
            return False
        setattr(self, name, value)
        return True

    # -- display data ------------------------------------------------------------------------

    def _store(self, b):
        """One data byte at the pointer, which then moves as the addressing mode says."""
        a = self.page * WIDTH + self.col
        changed = self.ram[a] != b
        if changed:
            self.ram[a] = b
        self._advance()
        return changed

    def _advance(self):
        mode = self.mode
        if mode == PAGE:  # along the page; past column 127, back to the start column
            self.col += 1
            if self.col > WIDTH - 1:
                self.col = self.page_col_start
        elif mode == HORIZONTAL:  # along the column range, then the next page of the range
            self.col += 1
            if self.col > self.col_end:
                self.col = self.col_start
                self.page += 1
                if self.page > self.page_end:
                    self.page = self.page_start
        else:  # VERTICAL: down the page range, then the next column of the range
            self.page += 1
            if self.page > self.page_end:
                self.page = self.page_start
                self.col += 1
                if self.col > self.col_end:
                    self.col = self.col_start

    def _data(self, buf, i, n):
        """buf[i:n], display data: along a page without a branch per byte where the mode allows
        (a frame is 1024 of them), else byte by byte."""
        ram = self.ram
        changed = False
        if self.mode == VERTICAL:
            for k in range(i, n):
                if self._store(buf[k]):
                    changed = True
            return changed
        while i < n:
            last = self.col_end if self.mode == HORIZONTAL else WIDTH - 1
            if self.col > last:  # a pointer set beyond the range: one byte at a time
                if self._store(buf[i]):
                    changed = True
                i += 1
                continue
            run = last - self.col + 1
            if run > n - i:
                run = n - i
            a = self.page * WIDTH + self.col - i
            for k in range(i, i + run):
                b = buf[k]
                if ram[a + k] != b:
                    ram[a + k] = b
                    changed = True
            i += run
            self.col += run - 1
            self._advance()
        return changed

    # -- what a person sees ------------------------------------------------------------------

    def lit(self):
        """Whether the panel lights at all: on, with its charge pump running."""
        return self.on and self.charge_pump

    def image(self, out):
        """The image on the glass into `out` (BYTES long, MONO_VLSB, see the top): dark while
        off; the RAM through the remaps, start line, offset and MUX; inverted or entirely on."""
        ram = self.ram
        if not self.lit():
            for i in range(BYTES):
                out[i] = 0
            return out
        if (self.seg_remap and self.com_remap and not self.start_line and not self.offset
                and self.mux == HEIGHT and self.com_pins == 0x12 and not self.entire_on):
            flip = 0xFF if self.inverted else 0
            for i in range(BYTES):
                out[i] = ram[i] ^ flip  # the driver's settings: the RAM as it is
            return out
        rows = self._row_map()
        on = 1 if self.entire_on else 0
        flip = 1 if self.inverted and not self.entire_on else 0
        for i in range(BYTES):
            out[i] = 0
        for y in range(HEIGHT):
            row = rows[y]
            if row == _DARK_ROW:
                continue
            src = (row >> 3) * WIDTH
            bit = row & 7
            dst = (y >> 3) * WIDTH
            mask = 1 << (y & 7)
            for x in range(WIDTH):
                col = x if self.seg_remap else WIDTH - 1 - x
                if on or ((ram[src + col] >> bit) & 1) ^ flip:
                    out[dst + x] |= mask
        return out

    def _row_map(self):
        """The RAM row shown on each screen row from the top, or _DARK_ROW. The panel's top row
        is COM63 (where the driver's C8h puts RAM row 0); the COM pin configuration decides
        which COM drives which panel row; the scan direction which row of the scan a COM shows;
        the offset and start line which RAM row that is; rows of the scan past the MUX ratio
        stay dark."""
        rows = self._rows
        n = self.mux
        alternative, swap = self.com_pins & 0x10, self.com_pins & 0x20
        for y in range(HEIGHT):
            p = HEIGHT - 1 - y  # the panel's rows, COM order as wired for the alternative pins
            if alternative:
                com = p ^ 1 if swap else p
            else:  # sequential: the pins of one side drive every other row
                com = (p >> 1) + (32 if p & 1 else 0)
                if swap:
                    com = (com + 32) % HEIGHT
            scan = (n - 1 - com) % HEIGHT if self.com_remap else com
            r = (scan + self.offset) % HEIGHT
            rows[y] = _DARK_ROW if r >= n else (r + self.start_line) % HEIGHT
        return rows

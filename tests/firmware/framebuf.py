# framebuf for the CPython runs of the firmware tests: MicroPython's own module is built in, and an
# import there finds it first, so the MicroPython runs draw with the real one. This stand-in has
# what panel.py and the tests use (MONO_VLSB only) and a font of its own: every printable
# character a distinct 8x8 pattern, the space blank, as framebuf's font has it. The tests read
# text back by matching cells against whichever font this interpreter's framebuf draws.
MONO_VLSB = 0


def _glyph(code):
    if code == 32:
        return bytes(8)
    return bytes(((code * (j + 3) * 37 + j * 11) & 0xFF) | 1 << (j % 8) for j in range(8))


class FrameBuffer:
    def __init__(self, buffer, width, height, fmt, stride=None):
        if fmt != MONO_VLSB:
            raise ValueError("only MONO_VLSB here")
        self._buf, self._width, self._height = buffer, width, height

    def pixel(self, x, y, c=None):
        if not (0 <= x < self._width and 0 <= y < self._height):
            return None if c is None else None
        i, bit = (y // 8) * self._width + x, 1 << (y % 8)
        if c is None:
            return 1 if self._buf[i] & bit else 0
        self._buf[i] = self._buf[i] | bit if c else self._buf[i] & ~bit
        return None

    def fill(self, c):
        for i in range(len(self._buf)):
            self._buf[i] = 0xFF if c else 0

    def fill_rect(self, x, y, w, h, c):
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                self.pixel(xx, yy, c)

    def text(self, s, x, y, c=1):
        for ch in s:
            glyph = _glyph(ord(ch))
            for j in range(8):
                for bit in range(8):
                    if glyph[j] >> bit & 1:
                        self.pixel(x + j, y + bit, c)
            x += 8

    def blit(self, source, x, y):
        for yy in range(source._height):
            for xx in range(source._width):
                self.pixel(x + xx, y + yy, source.pixel(xx, yy))

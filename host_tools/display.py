"""Shared: the operator panel's screen as the virtual device recorded it: images, their text, PNG
files (`laserctl scenario`'s report and --frames, `laserctl run`'s screen).

An image is the 128x64 display as a person sees it (host_tools/vdevice/mpy/sim_display.py), 1024
bytes laid out as MicroPython's framebuf.MONO_VLSB: byte page * 128 + x holds the column x of
rows page * 8 .. page * 8 + 7, bit y % 8 the row y (x from the left, y from the top).

The world's trace keeps each screen as its changes from the one before ("OFFSET:HEX ...", see
sim_display.changes); `frames` turns them back into whole images.

`text(image)` reads a screen back as 8 lines of 16 characters by matching each 8x8 cell against
the glyphs framebuf itself draws (FrameBuffer.text: its 8x8 font, characters 32..126), so that a
test of the text is a test of the pixels: a cell with no lit pixel reads " ", a fully lit cell
"\u2588" (the panel's progress bar), a cell that is neither nor any glyph "?". Text drawn off the
8-pixel grid or inverted (dark on lit) does not match. The glyphs are drawn once by the 64-bit
MicroPython and kept in build/display-font.json (drawn again when the interpreter is newer).

`png(image)` and `write_frames(frames, folder)`: each screen as a PNG, white on black, every
pixel 4x4 (zlib and struct: no dependency).
"""

import json
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path

from host_tools import paths, vdevice

WIDTH, HEIGHT = 128, 64
BYTES = WIDTH * HEIGHT // 8
COLUMNS, LINES = WIDTH // 8, HEIGHT // 8
BLANK, FULL, UNKNOWN = " ", "\u2588", "?"
FIRST_CHAR, LAST_CHAR = 32, 126
FONT_CACHE = paths.REPO / "build" / "display-font.json"
SCALE = 4
FRAME_NAME = re.compile(r"^\d{4}-\d+\.\d{3}s\.png$")  # what write_frames names its files

# Run by MicroPython: each glyph of FrameBuffer.text as its 8 bytes (MONO_VLSB), in hex.
_DRAW_FONT = """
import framebuf
buf = bytearray(8)
fb = framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_VLSB)
for c in range(%d, %d):
    fb.fill(0)
    fb.text(chr(c), 0, 0, 1)
    print(buf.hex())
""" % (FIRST_CHAR, LAST_CHAR + 1)


def frames(changes):
    """[(at_s, image bytes)] from the trace's records [(at_s, changes)], each applied to the
    image before it (the first to a dark screen)."""
    image = bytearray(BYTES)
    out = []
    for at_s, text in changes:
        for run in text.split():
            offset, data = run.split(":")
            start = int(offset)
            image[start:start + len(data) // 2] = bytes.fromhex(data)
        out.append((at_s, bytes(image)))
    return out


def pixel(image, x, y):
    """1 where the pixel at (x, y) is lit."""
    return image[(y >> 3) * WIDTH + x] >> (y & 7) & 1


def text(image):
    """The screen's 8 lines of text (trailing spaces stripped), read from its pixels."""
    if len(image) != BYTES:
        raise ValueError("an image is %d bytes, got %d" % (BYTES, len(image)))
    table = glyphs()
    lines = []
    for page in range(LINES):
        row = image[page * WIDTH:(page + 1) * WIDTH]
        cells = (bytes(row[c * 8:c * 8 + 8]) for c in range(COLUMNS))
        lines.append("".join(table.get(cell, UNKNOWN) for cell in cells).rstrip(" "))
    return lines


def glyphs():
    """{the 8 bytes of a cell: its character}: framebuf's font, a blank and a full cell."""
    global _GLYPHS
    if _GLYPHS is None:
        table = {}  # where two characters drew alike, the first would read
        for i, h in enumerate(_font_hex()):
            table.setdefault(bytes.fromhex(h), chr(FIRST_CHAR + i))
        table[bytes(8)] = BLANK
        table[b"\xff" * 8] = FULL
        _GLYPHS = table
    return _GLYPHS


_GLYPHS = None


def _font_hex():
    """The glyphs' hex, from the cache if the interpreter that drew them is not newer."""
    executable = Path(paths.micropython_executable())
    try:
        cached = json.loads(FONT_CACHE.read_text())
        if cached["drawn_by"] == str(executable) and \
                cached["mtime"] == executable.stat().st_mtime and \
                len(cached["glyphs"]) == LAST_CHAR + 1 - FIRST_CHAR:
            return cached["glyphs"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    proc = vdevice.run(vdevice.command(None, script=("-c", _DRAW_FONT), path=()), timeout_s=60)
    font = proc.stdout.split()
    if len(font) != LAST_CHAR + 1 - FIRST_CHAR or not all(len(h) == 16 for h in font):
        raise RuntimeError("MicroPython drew no font: %r" % (proc.stdout + proc.stderr))
    FONT_CACHE.parent.mkdir(parents=True, exist_ok=True)
    # Written whole, then renamed: test workers running at once each see a whole file.
    with tempfile.NamedTemporaryFile("w", dir=FONT_CACHE.parent, delete=False,
                                     suffix=".tmp") as f:
        json.dump({"drawn_by": str(executable), "mtime": executable.stat().st_mtime,
                   "glyphs": font}, f)
    os.replace(f.name, FONT_CACHE)
    return font


def png(image, scale=SCALE):
    """The image as a PNG file's bytes: 8-bit grey, lit white on black, each pixel scale x scale."""
    rows = []
    for y in range(HEIGHT):
        line = bytes(255 if pixel(image, x, y) else 0 for x in range(WIDTH) for _ in range(scale))
        rows.extend([b"\x00" + line] * scale)  # filter 0 (none) before each row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", WIDTH * scale, HEIGHT * scale, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def frame_name(index, at_s):
    """The file of the index-th screen (from 1), shown from at_s: 0001-12.340s.png."""
    return "%04d-%.3fs.png" % (index, at_s)


def write_frames(frame_list, folder):
    """Each (at_s, image) as a PNG in `folder` (made if missing), named by frame_name; the frames
    of an earlier run there (files so named) are removed first. Returns the paths written.
    ValueError where `folder` exists and is not a folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError("%s exists and is not a folder" % folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if FRAME_NAME.match(old.name) and old.is_file():
            old.unlink()
    written = []
    for i, (at_s, image) in enumerate(frame_list, 1):
        path = folder / frame_name(i, at_s)
        path.write_bytes(png(image))
        written.append(path)
    return written

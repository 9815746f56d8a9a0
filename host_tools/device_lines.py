"""Shared: the vocabulary of what a device sends, the one way every host tool reads its lines.

The firmware writes ASCII JSON lines (firmware/lib/link.py, docs/serial.md): **events**, objects
with "ev" (state, status, fault, session, boot, ...; the status fields in STATUS_EVENTS), and
**replies** to requests, objects with "ok". A port also carries what is not the firmware's: a
REPL's banner, a traceback, line noise, another firmware, bytes cut by a reset. Host tools read it
through these functions, never with a strict decode: a byte that is not UTF-8 becomes U+FFFD, and
so does a lone surrogate that a "\\ud800" escape puts into a JSON string (Python keeps it, and
printing or encoding it as UTF-8 would then raise).

    parse(b'{"ev": "status", ...}\\r\\n')  # -> the dict, or None for a line that is not JSON
    text(b"\\xff\\xfe raw")                 # -> "\\ufffd\\ufffd raw"
    split(output)                          # -> (events, replies, other lines) of a whole output
"""

import json
import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text(data):
    """`data` (bytes or str) as a str that encodes as UTF-8."""
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8", "replace")
    return _LONE_SURROGATE.sub("\ufffd", data)


def clean(value):
    """`value` (parsed JSON) with every string, keys too, made safe by text()."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def parse(line):
    """The JSON value a line holds (bytes or str; its line end is ignored), cleaned; None if it
    is not JSON (or nests deeper than Python parses)."""
    try:
        return clean(json.loads(text(line)))
    except (ValueError, RecursionError):
        return None


# The events that carry the status fields (state, power_w, temp_c, delivered_j, target_j, ...).
STATUS_EVENTS = ("state", "status", "halt")
# What the virtual device itself prints between the firmware's lines (host_tools/vdevice/pty.py,
# mpy/vdev.py): a reset told, which a report's `resets` has from the world.
_SIMULATOR_LINES = ("virtual device: ", "MPY: soft reboot")


def is_event(obj):
    return isinstance(obj, dict) and "ev" in obj


def is_reply(obj):
    return isinstance(obj, dict) and "ok" in obj and "ev" not in obj


def object_in(line):
    """The JSON object on a line, or None: the whole line, else from a later "{" on (a line cut
    short, its rest never printed, may be followed on the same line by the next one)."""
    start = 0 if line[:1] == "{" else line.find("{")
    while start >= 0:
        obj = parse(line[start:])
        if isinstance(obj, dict):
            return obj
        start = line.find("{", start + 1)
    return None


def split(output):
    """A device's whole output (bytes or str) as (events, replies, other): its event objects and
    its replies ({"ok": ...}) in order, and every other non-blank line as text (tracebacks,
    prints, noise). The virtual device's own reset notices are left out."""
    events, replies, other = [], [], []
    for line in text(output).splitlines():
        obj = parse(line)
        if is_event(obj):
            events.append(obj)
        elif is_reply(obj):
            replies.append(obj)
        elif line.startswith(_SIMULATOR_LINES):
            continue
        elif line.strip():
            other.append(line)
    return events, replies, other



SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")  # Fitzpatrick (firmware/lib/protocols.py's)


def selection_name(selection):
    """A selected treatment in words, as a `status` reply's "selected" (and the device's
    treatment file) has it: {"protocol": name, "skin_type": n} -> "knee, skin type V", a spec of
    its own -> "custom treatment"; None where there is none."""
    if not isinstance(selection, dict):
        return None
    name = selection.get("protocol")
    if not isinstance(name, str):
        return "custom treatment"  # a spec of its own (power_w, dose_j_cm2, ...)
    skin = selection.get("skin_type")
    if isinstance(skin, int) and 1 <= skin <= len(SKIN_TYPES):
        return "%s, skin type %s" % (name, SKIN_TYPES[skin - 1])
    return name

# The device's own configuration, on its flash: what a service technician measures and sets per
# device over the board file's design defaults -- the diode's calibration curve and its date, limits
# lowered below the board's, and the service PIN's hash. Without valid settings `problem` says why
# emission stays locked: a device whose own calibration is lost must not emit on the design curve.
#
# Two copies: settings.json (current) and settings.prev (the previous good one), each written with
# flash.write_atomic, the previous copy first, so a power cut at any moment during a save leaves a
# valid current file (old or new) and a valid previous copy. Each file (FORMAT 1) is two lines:
#   {"format": 1, "sha256": "<hex SHA-256 of line 2's exact bytes>"}
#   {"calibration": [[0, 0.0], ...], "calibrated_on": "2026-03-01", "due_days": 365,
#    "limits": {"max_power_w": 12.0}, "pin": {"salt": "<32 hex>", "hash": "<64 hex>"}}
# The checksum covers the bytes as written, never a re-serialisation: MicroPython and CPython
# order dict keys differently. A file that checksums right is still validated against the board.
import hashlib
import json
import os
from binascii import hexlify, unhexlify

import heap
from fields import is_number, is_whole
from flash import read_bytes, write_atomic
from thermistor import shared

FORMAT = 1
FACTORY_PIN = "000000"  # the PIN while no valid settings are stored: the first save needs one
_KEYS = ("calibration", "calibrated_on", "due_days", "limits", "pin")
# A lowered limit -> the board field it replaces, and its unit.
_LIMITS = {"max_power_w": ("diode", "max_power_w", "W"),
           "max_energy_j": ("limits", "max_energy_j", "J")}
# board.py names the board's fields; the technician sets these under the settings' names.
_RENAMED = (("diode.calibration", "calibration"), ("diode.max_power_w", "limits.max_power_w"))
# Enough rounds that a PIN cannot be read off a copied file at a glance, few enough that one check
# stays far under 50 ms on an ESP32. The 5-try lockout, not this, guards the serial port. Fixed
# by FORMAT 1: changing it makes every stored PIN fail.
_PIN_ROUNDS = 200
_DIGITS = "0123456789"  # ASCII only: str.isdigit also takes other scripts' digits
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class SettingsError(ValueError):
    pass


def encode(values):
    """The file contents (bytes) for a values dict as stored (pin as {"salt", "hash"})."""
    body = json.dumps(values).encode()
    header = '{"format": %d, "sha256": "%s"}\n' % (FORMAT, _sha256_hex(body))
    return header.encode() + body + b"\n"


def hash_pin(pin, salt_bytes):
    """The hex of the PIN's salted, iterated SHA-256. SettingsError if `pin` is not a PIN."""
    if not (isinstance(pin, str) and 4 <= len(pin) <= 12 and _made_of(pin, _DIGITS)):
        raise SettingsError("pin: must be 4 to 12 digits 0-9")  # never echo a PIN: logs keep it
    digest = hashlib.sha256(salt_bytes + pin.encode()).digest()
    for _ in range(_PIN_ROUNDS):
        digest = hashlib.sha256(digest + salt_bytes).digest()
    return hexlify(digest).decode()


def due_on(calibrated_on, due_days):
    """The date "YYYY-MM-DD" `due_days` after `calibrated_on`, by whole months: no datetime on
    MicroPython, and its time epochs differ between ports."""
    year, month, day = _date(calibrated_on)
    if not is_whole(due_days) or not 1 <= due_days <= 3650:
        raise SettingsError("due_days: must be a whole number of days in 1..3650, got %r"
                            % (due_days,))
    day += due_days
    while day > _days_in(year, month):
        day -= _days_in(year, month)
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return "%04d-%02d-%02d" % (year, month, day)


class Settings:
    """The stored settings over `board` (a validated board dict: the design's defaults).

    values: the stored values, or None; source: the file they came from, or None; problem: why
    emission must stay locked, or None; notice: what the load fell back from, or None; board: the
    effective board, `board` with the calibration and limits applied (sharing its other
    sections), validated (`board` itself when values is None)."""

    def __init__(self, flash, board, path="settings.json", previous_path="settings.prev"):
        self.flash, self.path, self.previous_path = flash, path, previous_path
        self._design = board
        self.values = self.source = self.problem = self.notice = None
        self.board = board
        reasons = []
        for where in (path, previous_path):
            try:
                self.values, self.board = self._read(where)
            except SettingsError as e:
                reasons.append("%s: %s" % (where, e))
                continue
            self.source = where
            if reasons:
                self.notice = "%s; using %s" % ("; ".join(reasons), where)
            return
        if all(reason.endswith(": missing") for reason in reasons):
            self.problem = "no settings stored: calibrate the device (service)"
        else:
            self.problem = "settings unusable: " + "; ".join(reasons)

    def _read(self, path):
        data = read_bytes(self.flash, path)  # None: an OSError, i.e. missing or unreadable
        if data is None:
            raise SettingsError("missing" if self.flash.size(path) is None else "unreadable")
        values = _complete(_decode(data))
        return values, _effective(values, self._design)

    def check_pin(self, pin):
        """True if `pin` is the service PIN (FACTORY_PIN while no valid settings exist)."""
        if self.values is None:
            return isinstance(pin, str) and _same(pin, FACTORY_PIN)
        stored = self.values["pin"]
        try:
            return _same(hash_pin(pin, unhexlify(stored["salt"])), stored["hash"])
        except SettingsError:
            return False  # not shaped like a PIN: no hash can match it

    def save(self, changes):
        """Store the current values updated with `changes` (some of calibration, calibrated_on,
        due_days, limits -- replaced whole, {} lifts every lowering -- and pin given as
        {"new": "1234"}). All is validated first: on a SettingsError nothing is written and
        nothing here changes. An OSError while writing propagates."""
        if not isinstance(changes, dict):
            raise SettingsError("settings: the changes must be an object")
        new = dict(self.values or {})
        for key in changes:
            new[key] = _new_pin(changes[key]) if key == "pin" else changes[key]
        effective = _effective(_complete(new), self._design)
        data = encode(new)  # after validation: only plain JSON data remains
        if self.source == self.path:  # the current file is good: keep it as the previous copy
            write_atomic(self.flash, self.previous_path, encode(self.values))
        write_atomic(self.flash, self.path, data)
        self.values, self.board, self.source = _decode(data), effective, self.path
        self.problem = self.notice = None

    def set_pin(self, new_pin):
        """Store a new service PIN (a fresh salt each time)."""
        self.save({"pin": {"new": new_pin}})

    def due_on(self):
        if self.values is None:
            return None
        return due_on(self.values["calibrated_on"], self.values["due_days"])

    def describe(self):
        """For a status reply: dates, effective limits, where the values came from; no PIN hash."""
        values = self.values or {}
        return {"calibrated_on": values.get("calibrated_on"), "due_on": self.due_on(),
                "limits": {"max_power_w": self.board["diode"]["max_power_w"],
                           "max_energy_j": self.board["limits"]["max_energy_j"]},
                "source": self.source, "problem": self.problem, "notice": self.notice}


def _decode(data):
    """The values a file's bytes hold; SettingsError saying why they cannot be trusted."""
    if not data:
        raise SettingsError("empty")
    lines = data.split(b"\n")
    if len(lines) != 3 or lines[2]:
        raise SettingsError("truncated or damaged: not two whole lines")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or "format" not in header:
        raise SettingsError("damaged header")
    if header["format"] != FORMAT:
        raise SettingsError("format %r, this firmware reads format %d" % (header["format"], FORMAT))
    if header.get("sha256") != _sha256_hex(lines[1]):
        raise SettingsError("checksum mismatch")
    try:
        return json.loads(lines[1])
    except ValueError:
        raise SettingsError("values are not JSON")


def _complete(values):
    """Fill in the defaults (in place): a first save, or an image the host wrote, may omit them."""
    if isinstance(values, dict):
        values.setdefault("due_days", 365)
        values.setdefault("limits", {})
        if "pin" not in values:
            values["pin"] = _new_pin({"new": FACTORY_PIN})
    return values


def _check(values):
    """Check the fields that do not depend on the board: names, dates, the PIN's hash."""
    if not isinstance(values, dict):
        raise SettingsError("settings: must be an object")
    for key in values:
        if key not in _KEYS:
            raise SettingsError("%s: unknown field (known: %s)" % (key, ", ".join(_KEYS)))
    for key in _KEYS:
        if key not in values:
            raise SettingsError("%s: missing (the first save must include it)" % key)
    due_on(values["calibrated_on"], values["due_days"])  # checks both
    pin = values["pin"]
    if not (isinstance(pin, dict) and sorted(pin) == ["hash", "salt"]
            and _hex(pin["salt"], 32) and _hex(pin["hash"], 64)):
        raise SettingsError('pin: must be {"salt": hex, "hash": hex}, as set_pin stores it')
    if not isinstance(values["limits"], dict):
        raise SettingsError('limits: must be an object, like {"max_power_w": 10}')


def _effective(values, board):
    """Check complete `values` against `board`; return the effective board they make: a dict of
    its own with its own "diode" and "limits" (where the settings go), every other section the
    design board's, not a copy (on the chip a copy of the board is kilobytes, and the thermistor
    section keeps its one grid). The design board stays as it is."""
    _check(values)
    effective = dict(board)
    effective["diode"] = dict(board["diode"])
    effective["limits"] = dict(board["limits"])
    cal = values["calibration"]
    if isinstance(cal, list):  # the points copied too: a caller's list must not move the curve
        cal = [list(p) if isinstance(p, list) else p for p in cal]
    effective["diode"]["calibration"] = cal
    limits = values["limits"]
    for key in limits:
        if key not in _LIMITS:
            raise SettingsError("limits.%s: unknown field (known: %s)"
                                % (key, ", ".join(sorted(_LIMITS))))
        section, field, unit = _LIMITS[key]
        value, board_max = limits[key], board[section][field]
        if not is_number(value) or not value > 0:
            raise SettingsError("limits.%s: must be a number > 0, got %r" % (key, value))
        if value > board_max:
            raise SettingsError("limits.%s: must not exceed the board's %g %s"
                                % (key, board_max, unit))
        effective[section][field] = value
    # Every board rule applies to the result: the curve starts at [0, 0], rises, and reaches
    # max_power_w -- the lowered one, so an aged diode is usable below what it still reaches.
    # board.py is imported for this and dropped again: the loop does not keep it (app.py).
    import board as board_file

    try:
        return board_file.validate(effective, shared(board["thermistor"]))
    except board_file.BoardError as e:
        message = str(e)
        for old, new in _RENAMED:
            if message.startswith(old):
                message = new + message[len(old):]
        raise SettingsError(message)
    finally:
        heap.forget("board")


def _new_pin(change):
    if not (isinstance(change, dict) and list(change) == ["new"]):
        raise SettingsError('pin: give {"new": "<4 to 12 digits>"}, never a hash')
    salt = os.urandom(16)
    return {"salt": hexlify(salt).decode(), "hash": hash_pin(change["new"], salt)}


def _date(text):
    """(year, month, day) of a "YYYY-MM-DD" that names a real day from 2000 on."""
    ok = (isinstance(text, str) and len(text) == 10 and text[4] == text[7] == "-"
          and _made_of(text[:4] + text[5:7] + text[8:], _DIGITS))
    if ok:
        year, month, day = int(text[:4]), int(text[5:7]), int(text[8:])
        ok = year >= 2000 and 1 <= month <= 12 and 1 <= day <= _days_in(year, month)
    if not ok:
        raise SettingsError("calibrated_on: must be a date YYYY-MM-DD, got %r" % (text,))
    return year, month, day


def _days_in(year, month):
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _made_of(text, chars):
    return all(c in chars for c in text)


def _hex(text, length):
    return isinstance(text, str) and len(text) == length and _made_of(text, _DIGITS + "abcdef")


def _same(a, b):
    """a == b for strings, comparing every character whatever differs first."""
    diff = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        diff |= ord(a[i]) ^ ord(b[i])
    return diff == 0


def _sha256_hex(data):
    return hexlify(hashlib.sha256(data).digest()).decode()

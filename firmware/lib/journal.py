# The treatment journal: an append-only record of sessions, boots, faults and service actions on
# the device's flash (lib/flash.py). One record a line:
#     <hash> <body>\n
# <body> is the record's compact JSON text, with "n" (its number, from 1) and "ev" (its kind);
# <hash> is the lowercase hex SHA-256 of the previous record's hash (its ASCII hex) followed by the
# body's bytes, and record 1 chains from GENESIS. The hash covers the exact text written, so the
# host checks it with CPython although MicroPython orders a dict's keys differently. A changed
# byte, a removed record or records cut off the end break the chain where it happened.
#
# A record goes to the file in one write() and is committed when the file is closed, so a power
# cut leaves at most the start of the last line (on a flash that keeps unclosed data): the next
# scan drops it, atomically. Anything wrong elsewhere is reported and kept: it is evidence.
# The current file rotates into the old one at file_bytes, never over a record the host has not
# saved (released).
import hashlib
import json
from binascii import hexlify

from fields import is_whole

GENESIS = "0" * 64
_HEX_DIGITS = "0123456789abcdef"
_COPY_CHUNK_BYTES = 512  # the repair copies the file through the heap this much at a time


def _link(prev_hash, body):
    """The hash of a record with `body` (str) that follows the record hashed `prev_hash`."""
    h = hashlib.sha256(prev_hash.encode())
    h.update(body.encode())
    return hexlify(h.digest()).decode()


def _text(raw):
    try:
        return raw.decode()
    except UnicodeError:  # not a ValueError on MicroPython
        raise ValueError("not UTF-8 text")


def parse(line):
    """(hash_hex, body_text, body_dict) of one record line (str, "\\n" optional); ValueError
    naming the problem for a line that is not a record."""
    if line[-1:] == "\n":
        line = line[:-1]
    if len(line) < 66 or line[64] != " ":
        raise ValueError("not 64 hex digits, a space and a JSON body")
    hash_hex, body = line[:64], line[65:]
    for c in hash_hex:
        if c not in _HEX_DIGITS:
            raise ValueError("the hash is not 64 lowercase hex digits")
    try:
        record = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON (cut short or damaged)")
    if not isinstance(record, dict):
        raise ValueError("the body is not a JSON object")
    n = record.get("n")
    if not is_whole(n) or n < 1:
        raise ValueError("the body has no record number n >= 1")
    if not isinstance(record.get("ev"), str):
        raise ValueError("record n=%d has no event kind ev" % n)
    return hash_hex, body, record


class _Chain:
    """Follows the records in order: their numbers and the hash each chains from."""

    def __init__(self, prev_hash=None):
        self.hash = prev_hash  # the latest record's stored hash; None: none yet
        self.n = None  # the latest record's number
        self._unread = 0  # unreadable lines since it: each may have been a record
        self._computed = None  # what the record being checked hashes to, when not its own hash
        self._altered_to = None  # the same for the latest record

    def problem(self, hash_hex, body, n):
        """What breaks the chain at this record, or None."""
        self._computed = None
        if self.n is not None:
            if n <= self.n:
                return "record n=%d out of order after n=%d (repeated or moved)" % (n, self.n)
            if n > self.n + 1 + self._unread:
                return "records n=%d..%d missing" % (self.n + 1, n - 1)
        prev = GENESIS if self.hash is None and n == 1 else self.hash
        if prev is None or self._unread:
            return None  # its predecessor was released and rotated away, or is unreadable
        computed = _link(prev, body)
        if computed == hash_hex:
            return None
        if self._altered_to is not None and _link(self._altered_to, body) == hash_hex:
            return None  # the previous record's stored hash was the change (reported there)
        self._computed = computed
        return "record n=%d fails its hash (altered)" % n

    def advance(self, hash_hex, n):
        """Go on from this record's stored hash, after a problem too: what follows chained from
        it. Not from a record out of order: what follows chained from the latest in order."""
        if self.n is not None and n <= self.n:
            return False
        self.hash, self.n, self._unread, self._altered_to = hash_hex, n, 0, self._computed
        return True

    def unreadable(self):
        self._unread += 1


def verify(lines, prev_hash=None, head=None):
    """For the host: check record lines (str, in order). Returns (records, problems): the bodies
    of the lines that parse, and (index, message) where the chain breaks. prev_hash: what the
    first line chains from (None: it is trusted, unless it is record 1). head: (n, hash) of the
    device's latest record, to find records cut off the end."""
    records, problems = [], []
    chain = _Chain(prev_hash)
    for i, line in enumerate(lines):
        try:
            hash_hex, body, record = parse(line)
        except ValueError as e:
            problems.append((i, "malformed line: %s" % e))
            chain.unreadable()
            continue
        problem = chain.problem(hash_hex, body, record["n"])
        chain.advance(hash_hex, record["n"])
        records.append(record)
        if problem is not None:
            problems.append((i, problem))
    if head is not None:
        last_n = chain.n or 0
        if last_n < head[0]:
            problems.append((len(lines), "journal ends at n=%d but the device's head is n=%d "
                             "(records cut off the end)" % (last_n, head[0])))
        elif last_n == head[0] and chain.hash != head[1]:
            problems.append((len(lines), "record n=%d is not the device's head (altered)" % last_n))
    return records, problems


def _check_json(value, where):
    """ValueError unless `value` is JSON that reads back as itself: MicroPython's json writes a
    set, bytes or any other object as text that is not its value, or not JSON at all."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value - value != 0:  # nan and inf: not JSON numbers
            raise ValueError("%s is %r: not a JSON number" % (where, value))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, "%s[%d]" % (where, i))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError("%s has a key that is not a str: %r" % (where, key))
            _check_json(value[key], where + "." + key)
    else:
        raise ValueError("%s is a %s: not JSON" % (where, type(value).__name__))


def _body(record, n):
    """The compact JSON text of `record` numbered n."""
    if not isinstance(record, dict) or not isinstance(record.get("ev"), str):
        raise ValueError("a record is a dict with an event kind ev (a str)")
    if "n" in record:
        raise ValueError("a record's n is the journal's to give")
    _check_json(record, "record")
    body = dict(record)
    body["n"] = n
    try:
        return json.dumps(body, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ValueError("record cannot be written as JSON: %s" % e)


class Journal:
    file_bytes = 16384  # the current file rotates once it reaches this size

    def __init__(self, flash, path="journal.log", old_path="journal.old", on_record=None):
        self.flash, self.path, self.old_path = flash, path, old_path
        self._scan(on_record)

    @property
    def first_n(self):
        return self._old_first_n if self._old_first_n is not None else self._log_first_n

    @property
    def full(self):
        """The current file is due to rotate but journal.old holds records not yet released."""
        return self._size_bytes() >= self.file_bytes and not self._may_rotate()

    def append(self, record):
        """Add `record` (a dict with "ev", without "n") as record last_n + 1; returns its n."""
        if self._stale:
            self._scan(None)  # a write failed part-way: drop what it left before writing on
        n = self.last_n + 1
        body = _body(record, n)
        hash_hex = _link(self.last_hash, body)
        if self._size_bytes() >= self.file_bytes and self._may_rotate():
            self.flash.rename(self.path, self.old_path)  # replaces only released records
            self._old_first_n, self._old_max_n = self._log_first_n, self._log_max_n
            self._log_first_n = None
        try:
            with self.flash.open(self.path, "ab") as f:
                f.write((hash_hex + " " + body + "\n").encode())  # one write: one cut fragment
        except OSError:
            self._stale = True  # the file may end in part of this line
            raise
        self.last_n, self.last_hash, self._log_max_n = n, hash_hex, n
        if self._log_first_n is None:
            self._log_first_n = n
        return n

    def read(self, from_n, count):
        """The lines (without "\\n") of the records numbered from_n on, oldest first, at most
        count of them. Unreadable lines have no number: the scan reported them."""
        lines = []
        for path in (self.old_path, self.path):
            if path == self.old_path and self._old_max_n is not None and from_n > self._old_max_n:
                continue
            if self.flash.size(path) is None:
                continue
            with self.flash.open(path, "rb") as f:
                for raw in f:
                    if len(lines) >= count:
                        return lines
                    try:
                        text = _text(raw)
                        n = parse(text)[2]["n"]
                    except ValueError:
                        continue
                    if n >= from_n:
                        lines.append(text[:-1] if text[-1:] == "\n" else text)
        return lines

    def release(self, through_n, stamp=None):
        """The host has saved every record through through_n: put that on record (with the
        fields of `stamp` beside it: the logbook's when and where), then free the old file if
        nothing in it is unsaved. Returns the release record's n."""
        if not is_whole(through_n) or not self.released_n <= through_n <= self.last_n:
            raise ValueError("cannot release through n=%r: from n=%d (released already) to n=%d "
                             "(the latest record)" % (through_n, self.released_n, self.last_n))
        record = {"ev": "release", "through": through_n}
        if stamp:
            record.update(stamp)
        n = self.append(record)
        self.released_n = through_n  # only once the release is on record
        old_released = self._old_max_n is None or self._old_max_n <= through_n
        if old_released and self.flash.size(self.old_path) is not None:
            self.flash.remove(self.old_path)
            self._old_first_n = self._old_max_n = None
        return n

    def _size_bytes(self):
        return self.flash.size(self.path) or 0

    def _may_rotate(self):
        return self._old_max_n is None or self._old_max_n <= self.released_n

    def _scan(self, on_record):
        self.released_n = 0
        self.problems, self.repaired, self._stale = [], None, False
        chain = _Chain()
        self._old_first_n, self._old_max_n = self._scan_file(self.old_path, chain, on_record)
        self._log_first_n, self._log_max_n = self._scan_file(self.path, chain, on_record)
        self.last_n, self.last_hash = chain.n or 0, chain.hash or GENESIS

    def _scan_file(self, path, chain, on_record):
        """Check one file's lines; returns the first and the highest n in it. An unterminated
        last line of the current file is a write the power cut short: completed when it is a
        whole record but for its newline, else dropped."""
        first_n = max_n = None
        if self.flash.size(path) is None:
            return None, None
        kept_bytes = cut_bytes = 0
        newline_missing = False
        with self.flash.open(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                n = None
                try:
                    hash_hex, body, record = parse(_text(raw))
                    n = record["n"]
                    problem = chain.problem(hash_hex, body, n)
                except ValueError as e:
                    problem = "malformed line: %s" % e
                if raw[-1:] != b"\n" and path == self.path:
                    if problem is not None:
                        cut_bytes = len(raw)
                        break
                    newline_missing = True
                kept_bytes += len(raw)
                if n is None:
                    chain.unreadable()
                elif chain.advance(hash_hex, n):
                    first_n = n if first_n is None else first_n
                    max_n = n
                if problem is not None:
                    self.problems.append("%s line %d: %s" % (path, line_no, problem))
                    continue
                if record["ev"] == "release" and is_whole(record.get("through")):
                    self.released_n = record["through"]
                if on_record is not None:
                    on_record(record)
        if cut_bytes:
            self._keep_start(kept_bytes)
            self.repaired = ("dropped a partial record of %d bytes at the end of %s "
                             "(a write cut short)" % (cut_bytes, path))
        elif newline_missing:
            with self.flash.open(path, "ab") as f:
                f.write(b"\n")
            self.repaired = ("completed the newline of record n=%d at the end of %s "
                             "(a write cut short)" % (chain.n, path))
        return first_n, max_n

    def _keep_start(self, kept_bytes):
        """Cut the current file to its first kept_bytes, atomically: a copy goes to a temporary
        file, closed (committed) before a rename puts it in place."""
        tmp = self.path + ".tmp"
        with self.flash.open(self.path, "rb") as src, self.flash.open(tmp, "wb") as dst:
            while kept_bytes > 0:
                chunk = src.read(min(kept_bytes, _COPY_CHUNK_BYTES))
                if not chunk:
                    raise OSError("%s shrank while being repaired" % self.path)
                dst.write(chunk)
                kept_bytes -= len(chunk)
        self.flash.rename(tmp, self.path)

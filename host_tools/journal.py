"""`laserctl journal --port PORT --out FILE`: download the device's journal over the serial
protocol, verify every record's hash and the chain up to the head the device reports, and write
the records as CSV or JSON (by the file's extension). docs/memory.md describes the journal.

Exit status: 0 when the chain is intact, 1 when it is broken (the file is still written, and
every break is reported with its line), 2 when the journal could not be read or --out names no
known format (before the device is touched)."""

import csv
import datetime
import json
import sys

from host_tools import paths
from host_tools.serial_link import DeviceError, SerialLink, service_pin


def download(link):
    """Every line of the journal on the device, and the head (last_n, last_hash) it reports."""
    lines = []
    reply = link.call("journal_export")
    head = (reply["last_n"], reply["last_hash"])
    while reply["lines"]:
        lines += reply["lines"]
        last = _number(reply["lines"][-1])
        if last is None or last >= head[0]:
            break
        reply = link.call("journal_export", **{"from": last + 1})
    return lines, head, reply["first_n"]


def _number(line):
    journal = paths.firmware_module("journal")

    try:
        return journal.parse(line)[2]["n"]
    except ValueError:
        return None


def verify(lines, head, first_n):
    """(records, problems) by the firmware's own journal.verify; a journal that still starts at
    record 1 is checked from the genesis hash, one whose start was released from its first line."""
    journal = paths.firmware_module("journal")

    prev = journal.GENESIS if first_n == 1 else None
    return journal.verify(lines, prev, head)


IDENTITY = ("device", "version", "image", "manifest")  # what status names the device by


def identity(link):
    """The device the journal comes from, as its status names it: {device, version, image,
    manifest} (the chip's unique id, the firmware's version, the frozen image, the deployment)."""
    status = link.call("status")
    return {key: status.get(key) for key in IDENTITY}


FORMATS = (".csv", ".json")
# The CSV's first columns: what and when; every other field follows in alphabetical order.
FIRST_COLUMNS = ("n", "ev", "utc", "utc_s", "boot", "up_s")


def write(records, lines, out, device=None):
    """The records to `out`: JSON {"device", "records", "lines"} (the records as the device wrote
    them), or CSV after one comment line "# device: ..." naming where they come from ("-" for a
    null): one row a record, one column a field (docs/journal.md lists them), and `utc`, the
    time of utc_s in ISO 8601. A cell is empty for null or a field the record does not have;
    true/false for a truth value; JSON for a list or an object (calibration points, limits)."""
    device = device or {}
    if out.lower().endswith(".json"):
        with open(out, "w") as f:
            json.dump({"device": device, "records": records, "lines": lines}, f, indent=1)
        return
    keys = [k for k in FIRST_COLUMNS if k == "utc" or any(k in r for r in records)]
    keys += sorted({k for record in records for k in record} - set(keys))
    with open(out, "w", newline="") as f:
        f.write("# device: %s\n" % ", ".join(
            "%s %s" % (k, "-" if device.get(k) is None else device[k]) for k in IDENTITY))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for record in records:
            row = {k: _cell(record.get(k)) for k in keys}
            row["utc"] = _iso(record.get("utc_s"))
            writer.writerow(row)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _iso(utc_s):
    if not isinstance(utc_s, int) or isinstance(utc_s, bool):
        return ""
    try:
        return datetime.datetime.fromtimestamp(utc_s, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return ""  # an altered record's time: its utc_s cell holds what was found


def main(args):
    if not args.out.lower().endswith(FORMATS):
        print("laserctl journal: --out %s: the file's extension names its format: .csv or "
              ".json" % args.out, file=sys.stderr)
        return 2
    pin = service_pin(args.pin)
    try:
        with SerialLink(args.port) as link:
            link.wait_ready()
            clock = link.sync_clock()
            if clock:
                print(clock)
            device = identity(link)
            link.call("service", pin=pin)
            try:
                lines, head, first_n = download(link)
            finally:
                link.request("logout")
    except DeviceError as e:
        print("laserctl journal: %s" % e, file=sys.stderr)
        return 2
    records, problems = verify(lines, head, first_n)
    write(records, lines, args.out, device)
    print("%d records (n=%s..%d) written to %s" % (len(records), first_n, head[0], args.out))
    for index, message in problems:
        print("line %d: %s" % (index + 1, message))
    if problems:
        print("the journal's chain is BROKEN (%d problems)" % len(problems))
        return 1
    print("hash chain intact up to the device's head n=%d" % head[0])
    return 0

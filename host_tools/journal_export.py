"""`laserctl journal --port PORT --out FILE`: download the device's journal over the serial
protocol, verify every record's hash and the chain up to the head the device reports, and write
the records as CSV or JSON (by the file's extension). docs/memory.md describes the journal.

Exit status: 0 when the chain is intact, 1 when it is broken (the file is still written, and
every break is reported with its line), 2 when the journal could not be read."""

import csv
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
    paths.firmware_import_path()
    import journal

    try:
        return journal.parse(line)[2]["n"]
    except ValueError:
        return None


def verify(lines, head, first_n):
    """(records, problems) by the firmware's own journal.verify; a journal that still starts at
    record 1 is checked from the genesis hash, one whose start was released from its first line."""
    paths.firmware_import_path()
    import journal

    prev = journal.GENESIS if first_n == 1 else None
    return journal.verify(lines, prev, head)


IDENTITY = ("device", "version", "image", "manifest")  # what status names the device by


def identity(link):
    """The device the journal comes from, as its status names it: {device, version, image,
    manifest} (the chip's unique id, the firmware's version, the frozen image, the deployment)."""
    status = link.call("status")
    return {key: status.get(key) for key in IDENTITY}


def write(records, lines, out, device=None):
    """The records to `out`: JSON {"device", "records", "lines"}, or CSV (one row a record) after
    one comment line "# device: ..." naming where they come from ("-" for a null)."""
    device = device or {}
    if out.endswith(".json"):
        with open(out, "w") as f:
            json.dump({"device": device, "records": records, "lines": lines}, f, indent=1)
        return
    keys = []
    for record in records:
        keys += [k for k in record if k not in keys]
    keys.sort(key=lambda k: (k not in ("n", "ev"), k != "ev", k))
    with open(out, "w", newline="") as f:
        f.write("# device: %s\n" % ", ".join(
            "%s %s" % (k, "-" if device.get(k) is None else device[k]) for k in IDENTITY))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if record.get(k) is None else record[k] for k in keys})


def main(args):
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

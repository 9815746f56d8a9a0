"""`laserctl journal`'s file (host_tools/journal.py): one column per field, values a
spreadsheet reads back, and a refusal of an --out it could not write as asked. The download and
its verification against a device run in tests/test_vdevice_mpremote.py."""

import argparse
import csv
import json

import pytest

from host_tools import journal as journal_cmd
from host_tools import paths

RECORDS = [
    {"ev": "boot", "device": "240ac4000001", "utc_s": None, "boot": 3, "up_s": 0, "n": 1},
    {"ev": "service", "action": "calibration", "calibration": [[0, 0.0], [65535, 16.0]],
     "calibrated_on": "2026-12-06", "utc_s": 1796515200, "boot": 3, "up_s": 40, "n": 2},
    {"ev": "service", "action": "limits", "limits": {"max_power_w": 7.5},
     "utc_s": 1796515260, "boot": 3, "up_s": 100, "n": 3},
    {"ev": "session", "end": "COMPLETE", "delivered_j": 800.004, "delivered_max_j": 800.004,
     "monitored": True, "utc_s": 1796515500, "boot": 3, "up_s": 340, "n": 4},
]
DEVICE = {"device": "240ac4000001", "version": "0.2.0", "image": None, "manifest": "8e3d"}


def _rows(path):
    with open(path, newline="") as f:
        comment = f.readline()
        return comment, list(csv.DictReader(f))


def test_csv_has_one_column_per_field_what_and_when_first(tmp_path):
    out = tmp_path / "journal.csv"
    journal_cmd.write(RECORDS, [], str(out), DEVICE)
    comment, rows = _rows(out)
    assert comment == "# device: device 240ac4000001, version 0.2.0, image -, manifest 8e3d\n"
    columns = list(rows[0])
    assert columns[:6] == ["n", "ev", "utc", "utc_s", "boot", "up_s"]
    fields = {key for record in RECORDS for key in record}
    assert set(columns) == fields | {"utc"} and len(columns) == len(fields) + 1
    assert columns[6:] == sorted(columns[6:])


def test_csv_cells_read_back_as_the_records_values(tmp_path):
    out = tmp_path / "journal.csv"
    journal_cmd.write(RECORDS, [], str(out), DEVICE)
    _, rows = _rows(out)
    # The time in ISO 8601 beside the seconds it is read from; empty where none was known.
    assert (rows[0]["utc"], rows[0]["utc_s"]) == ("", "")
    assert (rows[1]["utc"], rows[1]["utc_s"]) == ("2026-12-06T00:00:00Z", "1796515200")
    # Lists and objects as JSON, truth values as true/false, a missing field empty.
    assert json.loads(rows[1]["calibration"]) == [[0, 0.0], [65535, 16.0]]
    assert json.loads(rows[2]["limits"]) == {"max_power_w": 7.5}
    assert rows[3]["monitored"] == "true" and rows[0]["delivered_j"] == ""
    assert float(rows[3]["delivered_j"]) == 800.004


def test_an_altered_records_impossible_time_is_written_as_found_not_a_crash(tmp_path):
    out = tmp_path / "journal.csv"
    altered = [dict(RECORDS[0], utc_s=10 ** 13), dict(RECORDS[1], utc_s=-(10 ** 12))]
    journal_cmd.write(altered, [], str(out), DEVICE)
    _, rows = _rows(out)
    assert [(r["utc"], r["utc_s"]) for r in rows] == [("", str(10 ** 13)), ("", str(-(10 ** 12)))]


def test_json_keeps_the_records_as_the_device_wrote_them(tmp_path):
    out = tmp_path / "journal.JSON"  # the extension in any case
    journal_cmd.write(RECORDS, ["line"], str(out), DEVICE)
    saved = json.loads(out.read_text())
    assert saved == {"device": DEVICE, "records": RECORDS, "lines": ["line"]}


@pytest.mark.parametrize("name", ["journal.txt", "journal", "journal.csv.bak", "journal.xlsx"])
def test_an_unknown_out_extension_is_refused_before_the_device_is_touched(name, tmp_path,
                                                                          capsys):
    out = tmp_path / name
    args = argparse.Namespace(port=str(tmp_path / "no-such-port"), out=str(out), pin="1234")
    assert journal_cmd.main(args) == 2
    err = capsys.readouterr().err
    assert ".csv or .json" in err and name in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _doc_check():
    """The check docs/journal.md gives for a file someone hands you (its Python block)."""
    text = (paths.REPO / "docs" / "journal.md").read_text()
    section = text[text.index("## Checking a file someone hands you"):]
    start = section.index("```python\n") + 10
    return section[start:section.index("\n```", start)]


def _exported(tmp_path, monkeypatch):
    """A real journal (the firmware's own module, on a directory), exported as JSON."""
    journal_module = paths.firmware_module("journal")
    Flash = paths.firmware_module("flash").Flash

    monkeypatch.chdir(tmp_path)
    log = journal_module.Journal(Flash())
    for record in RECORDS:
        log.append({k: v for k, v in record.items() if k != "n"})
    lines = log.read(1, 100)
    records, problems = journal_module.verify(lines, journal_module.GENESIS)
    assert problems == []
    journal_cmd.write(records, lines, "journal.json", DEVICE)
    return json.loads((tmp_path / "journal.json").read_text())


def test_the_documented_check_passes_an_intact_file_and_catches_an_edited_one(
        tmp_path, monkeypatch, capsys):
    saved = _exported(tmp_path, monkeypatch)
    check = _doc_check().replace('"firmware/lib"', repr(str(paths.FIRMWARE_LIB)))
    exec(check, {})
    assert "4 records; chain intact" in capsys.readouterr().out
    # A figure changed in the records, as a spreadsheet would: the lines do not hold it.
    saved["records"][3]["delivered_j"] = 900.0
    (tmp_path / "journal.json").write_text(json.dumps(saved))
    with pytest.raises(AssertionError, match="differ from the lines"):
        exec(check, {})
    # Changed in the line as well: its hash no longer matches.
    saved["lines"][3] = saved["lines"][3].replace("800.004", "900.0")
    (tmp_path / "journal.json").write_text(json.dumps(saved))
    with pytest.raises(AssertionError):
        exec(check, {})
    assert "record n=4 fails its hash (altered)" in capsys.readouterr().out

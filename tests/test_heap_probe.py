"""The memory budget of issue 15: the frozen firmware in the ESP32's boot heap (56,000 bytes) on the
chip-shaped interpreter. Its real boot (boot.py, main.py, the esp32-devkitc board, the settings, a
journal a few records short of its rotation size), then the worst workload: a treatment at the
board's maximum power with two pauses to COMPLETE in the warmest room it is rated for (the thermal
warning and its alarm), every kind of serial request, the periodic status lines, a journal
rotation. It ends with no MemoryError and at least 16 KB free, 4 KB in one block
(host_tools/heap_probe.py; docs/chip.md, "The heap, measured")."""

import json

from host_tools import heap_probe


def test_the_frozen_firmware_runs_the_worst_workload_within_the_esp32_heap():
    figures = heap_probe.measure("frozen", find_smallest=False)
    assert figures["firmware_heap"] - 56000 < 64
    assert figures["ok"], (figures["failed"], figures["halted"], figures["faults"],
                           figures["firmware_errors"])
    # The workload happened: the session, the alarm, the rotation, every request answered.
    assert figures["session_ends"] == ["COMPLETE"]
    assert "WARNING" in figures["thermal_levels"]
    journal = figures["journal_bytes"]
    assert journal["journal.old"] >= 16384 > journal["journal.log"]  # rotated during the workload
    # One every 250 ms (the board's status_period_ms); the UART's backlog may drop a few.
    assert figures["status_lines"] >= 0.9 * heap_probe.UNTIL_S * 1000 / 250
    replies = figures["replies"]
    assert len(replies) == figures["requests"] == heap_probe.REQUESTS
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    kinds = {r["cmd"] for r in replies}
    assert {"status", "list", "select", "journal", "journal_export", "service", "limits"} <= kinds
    after = figures["firmware"]["after_workload"]
    assert after["free"] >= 16 * 1024 and after["largest_free"] >= 4 * 1024, after


def test_the_probe_reads_what_the_device_printed():
    stdout = "\n".join([
        "PROBE after_boot",
        "GC: total: 86784, used: 65104, free: 21680",
        " No. of 1-blocks: 2082, 2-blocks: 142, max blk sz: 116, max free sz: 1014",
        "PROBE-END",
        json.dumps({"ev": "thermal", "level": "WARNING"}),
        json.dumps({"ev": "status", "state": "EMITTING"}),
        json.dumps({"ev": "selftest", "ok": True}),
        json.dumps({"ok": False, "cmd": "select", "error": "select: only in STANDBY"}),
        json.dumps({"ev": "halted", "reason": "MemoryError: memory allocation failed"}),
    ])
    result = heap_probe.parse(stdout)
    assert result["reports"]["after_boot"] == {"total": 86784, "used": 65104, "free": 21680,
                                               "largest_free": 1014 * 16}
    assert result["thermal_levels"] == ["WARNING"] and result["status_lines"] == 1
    assert result["replies"] == [{"ok": False, "cmd": "select",
                                  "error": "select: only in STANDBY"}]  # events are no replies
    assert result["halted"].startswith("MemoryError")
    assert not heap_probe.ok(result)  # a halted firmware never passes, whatever the heap says


def test_the_firmwares_share_is_read_off_the_block_map_of_its_region_only():
    # 64 blocks a line; a run of free lines printed as one; the simulator's area above the region
    # has a hole (its old objects replaced): it is not the firmware's free space.
    text = "\n".join([
        "GC: total: 3072, used: 100, free: 2972",
        " No. of 1-blocks: 5, 2-blocks: 1, max blk sz: 4, max free sz: 100",
        "GC memory layout; from 00001000:",
        "00000000: MDh===" + "." * 10 + "h=" + "." * 46,
        "       (1 lines all free)",
        "00000800: ..hT" + "T" * 40 + "." * 20,
        "",
    ])
    info = heap_probe.parse("PROBE after_workload\n" + text + "\nPROBE-END")["reports"][
        "after_workload"]
    assert info["heap_start"] == 0x1000 and len(info["map"]) == 3 * 64
    region_end = 0x1000 + (64 + 64 + 2) * 16  # the region ends two blocks into the third line
    figures = heap_probe.region_figures(info, region_end, 130 * 16)
    free_blocks = 10 + 46 + 64 + 2
    assert figures == {"free": free_blocks * 16, "used": (130 - free_blocks) * 16,
                       "largest_free": (46 + 64 + 2) * 16}

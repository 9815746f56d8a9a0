"""`laserctl plot`: a session drawn on one PNG, from a scenario report or from the device's own
JSON lines; what each panel holds, and the bad inputs that must leave no PNG behind."""

import argparse
import json
import math
import struct

import pytest

from host_tools import paths, plot, scenario
from host_tools import report as report_mod

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
START = [{"at_s": 0.5, "input": "key", "value": True},
         {"at_s": 1.0, "input": "arm", "value": True},
         {"at_s": 1.2, "input": "arm", "value": False},
         {"at_s": 4.0, "input": "footswitch", "value": True}]
# 10 W for 4 s, then the thermistor's wire breaks: FAULT, and no temperature reading after it.
# The tick counter starts 6 s before it wraps, so the device's own lines cross the wrap.
FAULTING = {"description": "thermistor opens at 8 s",
            "protocol": {"power_w": 10.0, "dose_j_cm2": 8.0, "area_cm2": 100.0},
            "until_s": 12, "clock_start_ms": (1 << 30) - 6000,
            "events": START + [{"at_s": 8.003, "fault": "thermistor_open"}]}


@pytest.fixture(scope="module")
def run():
    """(report, stdout): one run of the real firmware on the virtual device, with every line it
    printed on its serial port."""
    captured = {}

    def build_report(data, stdout, world, journal=None):
        captured["stdout"] = stdout
        return real_build_report(data, stdout, world, journal)

    real_build_report = report_mod.build_report
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_mod, "build_report", build_report)
        report = scenario.run(*scenario.validate(FAULTING))
    assert report["fault_codes"] == ["THERMISTOR_OPEN"] and report["final_state"] == "FAULT"
    return report, captured["stdout"]


def _main(report, out, title=None):
    return plot.main(argparse.Namespace(report=str(report), out=str(out), title=title, board=None))


def _by_gid(ax, gid):
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def _line(ax, gid):
    [line] = _by_gid(ax, gid)
    return list(line.get_xdata()), list(line.get_ydata())


def _bands(ax):
    """[(start_s, end_s, state)] of the state bands, in time order."""
    bands = [(patch.get_x(), patch.get_x() + patch.get_width(), patch.get_gid()[6:])
             for patch in ax.patches if (patch.get_gid() or "").startswith("state:")]
    return sorted(bands)


def test_a_report_becomes_a_png_of_the_promised_size(run, tmp_path, capsys):
    report_path, out = tmp_path / "report.json", tmp_path / "session.png"
    report_path.write_text(json.dumps(run[0]))
    assert _main(report_path, out) == 0
    assert capsys.readouterr().out.strip() == "wrote %s" % out
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert (width, height) == (plot.FIGSIZE_IN[0] * plot.DPI, plot.FIGSIZE_IN[1] * plot.DPI)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "session.png"]


def test_the_panels_hold_the_reports_series(run, tmp_path):
    report = run[0]
    session = plot.from_report(json.loads(json.dumps(report)), tmp_path / "r.json")
    fig = plot.draw(session)
    ax_power, ax_temp, ax_dose = fig.axes
    # Optical power: the plant's steps from dark at 0 s to the end, 10 W while emitting.
    t_s, watts = _line(ax_power, "optical_w")
    assert t_s[0] == 0 and t_s[-1] == report["ended_s"] == 12
    [(start_s, end_s)] = report["emission_intervals"]
    assert max(watts) == pytest.approx(10.0, rel=1e-3) and watts[-1] == 0
    assert watts[t_s.index(start_s)] > 9.9 and watts[t_s.index(end_s)] == 0
    # What the firmware reported: its power, its temperature (a gap once the sensor is open),
    # and its dose, which ends at the report's delivered_j, under the target line.
    measured = report["trace"]["measured"]
    assert _line(ax_power, "power_w")[1] == [row[2] for row in measured]
    t_temp, temp_c = _line(ax_temp, "temp_c")
    fault_s = report["faults"][0]["at_s"]
    after = [c for t, c in zip(t_temp, temp_c, strict=True) if t > fault_s + 0.01]
    assert after and all(math.isnan(c) for c in after)
    assert all(20 < c < 30 for t, c in zip(t_temp, temp_c, strict=True) if t < fault_s)
    assert len(_line(ax_temp, "heatsink_c")[0]) == len(report["trace"]["heatsink_c"])
    t_dose, dose_j = _line(ax_dose, "delivered_j")
    assert dose_j[-1] == report["delivered_j"] and t_dose[-1] == measured[-1][0]
    assert _line(ax_dose, "target_j")[1] == [report["target_j"]] * 2 == [800.0, 800.0]
    # Every panel: the fault's line at its time, the injected fault's marker, the state bands
    # in the report's order, edge to edge from 0 s to the end.
    for ax in fig.axes:
        [fault_line] = _by_gid(ax, "fault")
        assert list(fault_line.get_xdata()) == [fault_s] * 2
        [marker] = _by_gid(ax, "injected")
        assert list(marker.get_xdata()) == [report["faults_injected"][0]["at_s"]]
        bands = _bands(ax)
        assert [state for _, _, state in bands] == report["state_sequence"]
        assert [start for start, _, _ in bands] == [s["at_s"] for s in report["states"]]
        assert bands[0][0] == 0 and bands[-1][1] == 12
        assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))
    assert "THERMISTOR_OPEN" in [text.get_text() for text in ax_power.texts]
    [summary] = [text for text in fig.texts if text.get_gid() == "summary"]
    for part in ("target 800.0 J", "delivered %.1f J" % report["delivered_j"],
                 "final state FAULT", "faults: THERMISTOR_OPEN", "simulation"):
        assert part in summary.get_text()
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["STANDBY", "READY", "EMITTING", "FAULT"]


def test_title_is_the_option_else_the_description_over_what_the_session_was(run, tmp_path):
    report = run[0]
    session = plot.from_report(report, tmp_path / "r.json")
    [boot] = [r for r in report["journal"]["records"] if r["ev"] == "boot"]
    # The scenario's treatment, the firmware and device its journal names, its board.
    what = "10 W, 8 J/cm² over 100 cm² · firmware %s · device %s · board sim" % (
        boot["version"], boot["device"])
    assert plot.draw(session, "Bench 3").get_suptitle() == "Bench 3\n" + what
    assert plot.draw(session).get_suptitle() == "thermistor opens at 8 s\n" + what
    session.description = ""
    assert plot.draw(session).get_suptitle() == what
    # A preset is named as the panel names it; a report that tells nothing: the file's name.
    named = plot.from_report(dict(report, protocol_name="knee", skin_type=5), "r.json")
    assert plot.draw(named).get_suptitle().splitlines()[1].startswith("knee, skin type V · ")
    bare = plot.from_report({"trace": report["trace"]}, tmp_path / "r.json")
    assert plot.draw(bare).get_suptitle() == "r.json"


def test_a_device_logs_title_says_when_what_and_on_which_device(run, tmp_path):
    """What `laserctl console --log` records first: the status reply (the device, its firmware,
    the selected preset) and the clock's replies (the wall clock); the boot line names the
    board."""
    stdout = run[1]
    utc_s = 1777644180  # 2026-05-01 14:03 UTC
    log = tmp_path / "console.jsonl"
    log.write_text("\n".join(json.dumps(obj) for obj in [
        {"ok": True, "cmd": "status", "id": 1, "state": "STANDBY", "device": "240ac4000001",
         "version": "0.2.0", "selected": None},
        {"ok": True, "cmd": "clock", "id": 2, "utc_s": None},
        {"ok": True, "cmd": "clock", "id": 3, "utc_s": utc_s, "set": True, "from_s": None},
        {"ok": True, "cmd": "select", "id": 4, "selected": {"protocol": "knee", "skin_type": 5}},
        {"ok": True, "cmd": "journal", "id": 5, "records": [
            {"n": 7, "ev": "clock", "utc_s": utc_s - 86400, "device": "240ac4000001"}]},
    ]) + "\n" + stdout)
    [boot] = [json.loads(line) for line in stdout.splitlines() if '"ev": "boot"' in line]
    title = plot.draw(plot.load(log)).get_suptitle()
    assert title == "2026-05-01 14:03 UTC · knee, skin type V · firmware %s · device " \
        "240ac4000001 · board %s" % (boot["version"], boot["board"])
    # Without the clock's reply, the latest journal record's time; without anything, the name.
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:2] + lines[3:]))
    assert plot.draw(plot.load(log)).get_suptitle().startswith("2026-04-30 14:03 UTC · ")
    bare = tmp_path / "bare.jsonl"
    bare.write_text("\n".join(line for line in stdout.splitlines() if '"ev": "boot"' not in line))
    assert plot.draw(plot.load(bare)).get_suptitle() == "bare.jsonl"


def _limits(ax):
    return {artist.get_gid()[len("limit:"):]: list(artist.get_ydata())
            for artist in ax.get_children() if (artist.get_gid() or "").startswith("limit:")}


def test_the_boards_thermal_limits_are_drawn_on_the_temperature_axis(run, tmp_path, capsys):
    thermal = json.loads((paths.BOARDS / "sim.json").read_text())["thermal"]
    wanted = {"warning": [thermal["warning_c"]] * 2, "derate": [thermal["derate_start_c"]] * 2,
              "shutdown": [thermal["shutdown_c"]] * 2}
    # A scenario report names its board.
    ax_power, ax_temp, ax_dose = plot.draw(plot.from_report(run[0], "r.json")).axes
    assert _limits(ax_temp) == {}  # from_report alone does not read the board: load() does
    report_path = tmp_path / "report.json"
    report_path.write_text(json.dumps(run[0]))
    ax_power, ax_temp, ax_dose = plot.draw(plot.load(report_path)).axes
    assert _limits(ax_temp) == wanted
    assert _limits(ax_power) == _limits(ax_dose) == {}
    labels = ax_temp.get_legend_handles_labels()[1]
    assert labels[-3:] == ["warning 40 °C", "derating from 42 °C", "shutdown 45 °C"]
    assert ax_temp.get_ylim()[1] > thermal["shutdown_c"]  # in sight, however cool the session
    # A device's log: the board its boot line names, else the one given.
    stdout = run[1]
    log = tmp_path / "device.jsonl"
    log.write_text(stdout)
    assert _limits(plot.draw(plot.load(log)).axes[1]) == wanted
    log.write_text("\n".join(line for line in stdout.splitlines() if '"ev": "boot"' not in line))
    assert _limits(plot.draw(plot.load(log)).axes[1]) == {}
    assert _main(log, tmp_path / "a.png") == 0
    assert "thermal limits not drawn: the input names no board: give --board NAME" in \
        capsys.readouterr().out
    devkit = json.loads((paths.BOARDS / "esp32-devkitc.json").read_text())["thermal"]
    session = plot.load(log, "esp32-devkitc")
    assert _limits(plot.draw(session).axes[1])["shutdown"] == [devkit["shutdown_c"]] * 2
    assert plot.identity(session).endswith("board esp32-devkitc")
    assert plot.main(argparse.Namespace(report=str(log), out=str(tmp_path / "b.png"), title=None,
                                        board="no-such-board")) == 2
    assert "unknown board 'no-such-board'" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()


def _names(fig):
    return [text for text in fig.axes[0].texts
            if text.get_gid() in ("fault_label", "injected_label")]


def test_fault_names_sit_above_the_panels_clear_of_the_traces_and_of_each_other(run):
    report = run[0]
    session = plot.from_report(report, "r.json")
    # More faults close together than one row holds: a chain of codes within 0.3 s.
    t_s = report["faults"][0]["at_s"]
    session.faults += [(t_s + 0.1, "THERMISTOR_SHORT"), (t_s + 0.2, "OVER_TEMPERATURE"),
                       (11.9, "FOOTSWITCH_MISMATCH"), (0.05, "ESTOP")]
    fig = plot.draw(session)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax_power = fig.axes[0]
    panel = ax_power.get_window_extent(renderer)
    names = _names(fig)
    assert sorted(text.get_text() for text in names) == sorted(
        [code for _, code in session.faults] + ["injected: thermistor_open"])
    boxes = [text.get_window_extent(renderer) for text in names]
    for text, box in zip(names, boxes, strict=True):
        # Above the power panel's top edge (every trace is clipped to the panel), within its
        # width, over its own time unless it leans inwards at an end.
        assert box.y0 >= panel.y1, text.get_text()
        assert panel.x0 <= box.x0 and box.x1 <= panel.x1 + 1, text.get_text()
        t = next(t for t, code in session.faults + [(i, "injected: " + f)
                                                    for i, f in session.injected]
                 if code == text.get_text())
        x_px = ax_power.transData.transform((t, 0))[0]
        assert box.x0 <= x_px <= box.x1 or box.x0 == panel.x0 or box.x1 >= panel.x1 - 1
    for i, a in enumerate(boxes):  # no name over another
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    assert len({round(box.y0) for box in boxes}) >= 3  # the close ones went into rows
    # The summary and the title stay clear of the names above them.
    [summary] = [t for t in fig.texts if t.get_gid() == "summary"]
    summary_box = summary.get_window_extent(renderer)
    assert max(box.y1 for box in boxes) <= summary_box.y0
    assert summary_box.y1 <= fig._suptitle.get_window_extent(renderer).y0


def test_the_devices_own_lines_are_drawn_measured_only(run, tmp_path):
    report, stdout = run
    # A console log as it comes: the device's lines, replies, and noise from the REPL.
    log = tmp_path / "console.jsonl"
    log.write_text('{"ok": true, "cmd": "status", "state": "STANDBY"}\nMPY: soft reboot\n[]\n'
                   "Traceback (most recent call last):\n" + stdout)
    session = plot.load(log)
    assert not session.simulated and not session.optical_w and not session.heatsink_c
    # The same rows the scenario runner took from the same lines: the times across the tick
    # counter's wrap come out right.
    assert len(session.measured) == len(report["trace"]["measured"])
    for mine, theirs in zip(session.measured, report["trace"]["measured"], strict=True):
        assert mine[0] == pytest.approx(theirs[0], abs=1e-6)
        assert list(mine[1:]) == list(theirs[1:])
    assert session.faults == [(f["at_s"], f["code"]) for f in report["faults"]]
    assert session.states == [(s["at_s"], s["state"]) for s in report["states"]]
    assert (session.target_j, session.delivered_j, session.final_state) == \
        (report["target_j"], report["delivered_j"], "FAULT")
    fig = plot.draw(session)
    ax_power, ax_temp, ax_dose = fig.axes
    assert not _by_gid(ax_power, "optical_w") and not _by_gid(ax_temp, "heatsink_c")
    assert ax_temp.get_legend_handles_labels()[1][0] == "measured only"
    assert _line(ax_dose, "delivered_j")[1][-1] == report["delivered_j"]
    assert "measured only" in [t for t in fig.texts if t.get_gid() == "summary"][0].get_text()
    out = tmp_path / "console.png"
    assert _main(log, out) == 0 and out.read_bytes().startswith(PNG_SIGNATURE)


def test_lines_are_recognised_without_the_jsonl_suffix(run, tmp_path):
    stdout = run[1]
    log, jsonl = tmp_path / "console.log", tmp_path / "console.jsonl"
    log.write_text(stdout)
    jsonl.write_text(stdout)
    assert plot.load(log).measured == plot.load(jsonl).measured != []
    # One status line alone is one JSON document, but a log all the same.
    one = tmp_path / "one.json"
    one.write_text(next(line for line in stdout.splitlines() if '"status"' in line))
    session = plot.load(one)
    assert len(session.measured) == 1 and session.states[0][1] == "STANDBY"
    # A log begun mid-treatment has no state line for the state it starts in: the status
    # lines give it.
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if '"status"' in line and "EMITTING" in line)
    jsonl.write_text("\n".join(lines[first:]))
    assert [state for _, state in plot.load(jsonl).states] == ["EMITTING", "FAULT"]


def test_a_log_spanning_a_reboot_draws_the_last_boot(run, tmp_path):
    """The console appends to its log across restarts, and the device's clock starts again at
    each boot: only the last boot's lines share a time base."""
    stdout = run[1]
    assert '"ev": "boot"' in stdout
    earlier = '{"ev": "status", "t_ms": 999999, "state": "COMPLETE", "power_w": 0.0, ' \
              '"temp_c": 30.0, "delivered_j": 5.0, "target_j": 5.0}\n'
    jsonl = tmp_path / "console.jsonl"
    jsonl.write_text(earlier + stdout)
    alone = tmp_path / "alone.jsonl"
    alone.write_text(stdout)
    assert plot.load(jsonl).measured == plot.load(alone).measured
    assert plot.load(jsonl).measured[0][1] == "STANDBY"


def test_a_session_cut_by_a_watchdog_reset_is_plotted_with_its_dose_bound_never_0_j(tmp_path):
    # The loop hangs at 10 s: RTC memory kept the dose to the last tick, and the hang may have
    # added 0.51 s of 10 W. The report and the device's own lines say so; neither says 0.0 J.
    captured = {}
    real_build_report = report_mod.build_report

    def build_report(data, stdout, world, journal=None):
        captured["stdout"] = stdout
        return real_build_report(data, stdout, world, journal)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_mod, "build_report", build_report)
        report = scenario.run(*scenario.load(
            paths.REPO / "tests" / "scenarios" / "faults" / "loop_hang.json"))
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    lines = tmp_path / "device.jsonl"
    lines.write_text(captured["stdout"])
    for source in (path, lines):
        session = plot.load(source)
        assert session.delivered_j == report["delivered_j"] > 59
        assert session.delivered_max_j == report["delivered_max_j"] > session.delivered_j
        assert "delivered between %.1f J and %.1f J" % (
            report["delivered_j"], report["delivered_max_j"]) in plot.summary(session)
        assert session.measured[-1][4] == report["delivered_j"]  # the dose line holds it


BAD_INPUTS = {  # what the file holds, and what the message must say
    "missing": (None, "cannot read it"),
    "bad JSON": ('{"trace": {"measured": [', "neither a JSON report nor"),
    "not a report": ("[1, 2, 3]", "not a scenario report"),
    "empty report": ('{"description": "nothing", "trace": {"measured": [], "optical_w": []}}',
                     "nothing to plot"),
    "ill-formed report": ('{"trace": {"measured": [[1.0, "READY", 0.0]]}}', "ill-formed report"),
    "no event lines": ('{"ok": true, "cmd": "status"}\nhello\n', "no event lines"),
    "bad t_ms": ('{"ev": "status", "t_ms": "soon", "state": "READY", "power_w": 0.0}\n'
                 '{"ev": "fault", "t_ms": 5, "code": "X"}\n', "t_ms is not a whole number"),
    "status without power_w": ('{"ev": "fault", "t_ms": 5, "code": "X"}\n'
                               '{"ev": "status", "t_ms": 9, "state": "READY"}\n',
                               "ill-formed status line"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe", "not a text file"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_a_bad_input_exits_2_names_the_file_and_leaves_no_png(kind, tmp_path, capsys):
    content, problem = BAD_INPUTS[kind]
    source = tmp_path / "input.json"
    if isinstance(content, str):
        source.write_text(content)
    elif content is not None:
        source.write_bytes(content)
    out = tmp_path / "out.png"
    assert _main(source, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(source) in err and problem in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ([] if content is None else ["input.json"])


def test_a_failed_write_keeps_the_previous_png_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "session.png"
    out.write_bytes(b"the previous plot")

    class Failing:
        def savefig(self, f, **kwargs):
            f.write(b"half a png")
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        plot.write_png(Failing(), out)
    assert out.read_bytes() == b"the previous plot"
    assert [p.name for p in tmp_path.iterdir()] == ["session.png"]


def test_an_unwritable_or_non_png_output_exits_2(run, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    report_path.write_text(json.dumps(run[0]))
    assert _main(report_path, tmp_path / "no" / "such" / "folder.png") == 2
    assert "cannot write" in capsys.readouterr().err
    assert _main(report_path, tmp_path / "session.svg") == 2
    assert ".png" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]

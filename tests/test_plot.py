"""`laserctl plot`: a session drawn on one PNG, from a scenario report or from the device's own
JSON lines; what each panel holds, and the bad inputs that must leave no PNG behind."""

import argparse
import json
import math
import struct

import pytest

from host_tools import paths, plot, scenario

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

    real_build_report = scenario.build_report
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scenario, "build_report", build_report)
        report = scenario.run(*scenario.validate(FAULTING))
    assert report["fault_codes"] == ["THERMISTOR_OPEN"] and report["final_state"] == "FAULT"
    return report, captured["stdout"]


def _main(report, out, title=None):
    return plot.main(argparse.Namespace(report=str(report), out=str(out), title=title))


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


def test_title_is_the_option_else_the_description_else_the_file_name(run, tmp_path):
    session = plot.from_report(run[0], tmp_path / "r.json")
    assert plot.draw(session, "Bench 3, 2026-05-01").get_suptitle() == "Bench 3, 2026-05-01"
    assert plot.draw(session).get_suptitle() == "thermistor opens at 8 s"
    session.description = ""
    assert plot.draw(session).get_suptitle() == "r.json"


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
    assert ax_temp.get_legend_handles_labels()[1] == ["measured only"]
    assert _line(ax_dose, "delivered_j")[1][-1] == report["delivered_j"]
    assert "measured only" in [t for t in fig.texts if t.get_gid() == "summary"][0].get_text()
    assert plot.draw(session).get_suptitle() == "console.jsonl"
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
    real_build_report = scenario.build_report

    def build_report(data, stdout, world, journal=None):
        captured["stdout"] = stdout
        return real_build_report(data, stdout, world, journal)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scenario, "build_report", build_report)
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

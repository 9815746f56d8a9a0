"""`laserctl calibrate`: the fit and its checks on their own, then the whole procedure against the
virtual device with its panel (`laserctl vdevice --panel`), whose diode answers exactly as the sim
board's design curve says while the device's settings hold a curve 20 % low: the firmware counts
25 % less light than it emits until the calibration is measured, stored and applied."""

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from argparse import Namespace

import pytest
from vdevice_rig import BIN, REPO, read_until, wait_until

from host_tools import calibrate, paths, vdevice
from host_tools.serial_link import SerialLink
from host_tools.virtual_panel import VirtualPanel

_, SIM = vdevice.load_board("sim")
TRUE_CURVE = SIM["diode"]["calibration"]  # what the virtual diode does (sim_plant's Plant)
MAX_W = SIM["diode"]["max_power_w"]
DUTIES = "8000,16000,32000,60000"  # on the true curve's corners, and one over max_power_w
CHECK_DUTY = 24000  # not one of DUTIES: the new curve must hold between its points too
DATE = "2026-11-21"

needs_micropython = pytest.mark.skipif(
    not (BIN / "micropython").exists(), reason="micropython is installed with the project")


# -- the fit and its checks ----------------------------------------------------------------------


def test_the_threshold_is_where_the_two_lowest_lit_readings_extrapolate_to_no_light():
    readings = [(8000, 0.6), (16000, 3.1), (32000, 7.9), (60000, 15.5)]
    assert calibrate.threshold_duty(readings) == 6080  # 8000 - 0.6 W / (2.5 W / 8000)
    assert calibrate.fit_curve(readings) == [[0, 0.0], [6080, 0.0], [8000, 0.6], [16000, 3.1],
                                             [32000, 7.9], [60000, 15.5]]
    # A reading without light below it is the threshold's point already: none is invented.
    assert calibrate.threshold_duty([(5000, 0.0)] + readings) is None
    # A line that reaches 0 W only at a negative duty is no threshold either.
    assert calibrate.threshold_duty([(1000, 5.0), (2000, 5.5), (60000, 16.0)]) is None


def test_a_falling_reading_is_refused_by_name_and_the_firmware_refuses_it_too():
    readings = [(8000, 0.6), (16000, 3.1), (32000, 7.9), (48000, 7.5), (60000, 15.5)]
    problems, _ = calibrate.check_readings(readings, SIM, MAX_W)
    assert problems == ["the reading at duty 48000 (7.500 W) is lower than the one at duty 32000 "
                        "(7.900 W): the light cannot fall as the duty rises; measure both again"]
    refusal = calibrate.firmware_problem(calibrate.fit_curve(readings), SIM, MAX_W)
    assert "watts must not decrease" in refusal


def test_a_curve_short_of_max_power_w_is_refused_saying_which_duty_to_add():
    readings = [(8000, 0.6), (16000, 3.1), (32000, 7.9), (48000, 12.4)]
    problems, _ = calibrate.check_readings(readings, SIM, MAX_W)
    assert problems == ["the highest reading, 12.400 W at duty 48000, is below max_power_w "
                        "(15 W): add a higher duty, about 58900"]
    assert "below diode.max_power_w" in calibrate.firmware_problem(
        calibrate.fit_curve(readings), SIM, MAX_W)
    # Already at full duty: no duty to add, and the tool says so.
    problems, _ = calibrate.check_readings([(8000, 0.6), (65535, 14.0)], SIM, MAX_W)
    assert problems[0].endswith("the diode does not reach it even at full duty")


def test_a_good_curve_passes_both_checks_and_a_far_off_reading_only_warns():
    readings = [(d, w) for d, w in TRUE_CURVE if w > 0]
    assert calibrate.check_readings(readings, SIM, MAX_W) == ([], [])
    assert calibrate.firmware_problem(calibrate.fit_curve(readings), SIM, MAX_W) is None
    readings[2] = (32000, 7.9 * 1.3)  # the meter on the wrong range, say
    problems, warnings = calibrate.check_readings(readings, SIM, MAX_W)
    assert problems == []
    assert warnings == ["duty 32000: 10.270 W is +30 % off the design curve's 7.900 W: is the "
                        "power meter on the right range?"]


def test_the_default_duties_span_the_design_curve_and_the_firmware_arms_each():
    CalibrationPoint = paths.firmware_module("treatment").CalibrationPoint

    duties = calibrate.default_duties(SIM, MAX_W)
    assert len(duties) == calibrate.DEFAULT_POINTS and duties == sorted(duties)
    assert all(d % 8 == 0 for d in duties)  # 13 bits at 5 kHz: as the device aligns them
    assert calibrate.design_watts(SIM, duties[0]) == pytest.approx(0.05 * MAX_W, rel=0.02)
    assert calibrate.design_watts(SIM, duties[-1]) == pytest.approx(1.03 * MAX_W, rel=0.02)
    for duty in duties:  # none is over the firmware's headroom (its estimate, on this curve)
        assert CalibrationPoint(SIM, duty, 10).duty_u16 == duty


def test_the_meter_reading_is_asked_again_until_it_is_watts(monkeypatch, capsys):
    answers = iter(["", "seven", "-1", "nan", "7.85"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert calibrate.ask_meter_w() == 7.85
    assert capsys.readouterr().out.count("a number of watts") == 4
    with pytest.raises(ValueError, match="rising whole numbers"):
        calibrate.parse_duties("16000,8000")


def test_bad_arguments_are_refused_before_the_port_is_opened(capsys, tmp_path):
    def args(**changes):
        values = dict(port=str(tmp_path / "no-such-port"), pin="000000", board="sim",
                      duties=None, time_s=10, date=DATE, due_days=365, plot=None, yes=True,
                      virtual_panel=None)
        return Namespace(**{**values, **changes})

    for bad, words in ((dict(date="2026-02-30"), "calibrated_on: must be a date YYYY-MM-DD"),
                       (dict(due_days=0), "due_days: must be a whole number of days in 1..3650"),
                       (dict(duties="8000,x"), "--duties: rising whole numbers"),
                       (dict(time_s=61), "--time-s: 1..60"),
                       (dict(plot=str(tmp_path / "no" / "x.png")), "--plot: no folder"),
                       (dict(board="nope"), "unknown board 'nope'")):
        assert calibrate.main(args(**bad)) == 2
        assert words in capsys.readouterr().err
    assert calibrate.main(args()) == 2  # good arguments: now the port is missing
    assert "cannot open %s" % (tmp_path / "no-such-port") in capsys.readouterr().err


# -- on the virtual device -----------------------------------------------------------------------


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flash_with_a_wrong_calibration(root):
    """The virtual device's flash, its settings holding the true curve 20 % low (the last point
    raised to max_power_w, which a valid curve must reach)."""
    board = vdevice.make_image(root, "sim")
    wrong = copy.deepcopy(board)
    wrong["diode"]["calibration"] = [[d, round(w * 0.8, 4)] for d, w in TRUE_CURVE[:-1]] + \
        [[65535, MAX_W]]
    (root / "settings.json").write_bytes(vdevice.factory_settings(wrong))
    return root


@pytest.fixture
def start_device(tmp_path):
    """Start `laserctl vdevice --pty ... --root ROOT --panel PORT`; stopped however a test ends."""
    started = []

    def start(root, panel_port):
        port = str(tmp_path / "ttyV")
        log = open(tmp_path / "device.log", "wb")  # noqa: SIM115 - closed with the device
        started.append((subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "vdevice", "--pty", port, "--root",
             str(root), "--panel", str(panel_port)], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT), log))
        wait_until(lambda: os.path.islink(port) or started[-1][0].poll() is not None, 15,
                   "the device's port")
        assert started[-1][0].poll() is None, (tmp_path / "device.log").read_text()
        return port

    yield start
    for proc, log in started:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def laserctl_calibrate(port, *extra, time_s=1, stdin="", cwd=REPO, popen=False):
    """`laserctl calibrate --port PORT --board sim ... EXTRA`: its result, or with `popen` the
    running process (binary pipes)."""
    argv = [sys.executable, "-u", "-m", "host_tools.cli", "calibrate", "--port", port,
            "--board", "sim", "--pin", "000000", "--time-s", str(time_s), "--date", DATE, *extra]
    if popen:  # SIGINT as in a terminal, even where pytest runs with it ignored (a & job)
        return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=60)


def reported_and_true_w(port, panel_port, duty):
    """One calibration point of 1 s at `duty`, worked by hand here: (the power the firmware
    counts while emitting, the plant's true power averaged over the emission)."""
    with SerialLink(port) as link, VirtualPanel(panel_port) as panel:
        link.wait_ready()
        for name, value in (("footswitch", False), ("key", True), ("interlock", True)):
            panel.set(name, value)
        link.call("service", pin="000000")
        link.call("cal_point", duty=duty, time_s=1)
        time.sleep(0.2)  # the firmware must see the footswitch released in READY first
        panel.set("footswitch", True)
        reported_w, lit_w, deadline = None, [], time.monotonic() + 10
        while time.monotonic() < deadline:
            events = link.poll()
            lit_w += [s["optical_w"] for s in panel.poll() if s["optical_w"] > 0]
            reported_w = next((e["power_w"] for e in events if e.get("state") == "EMITTING"),
                              reported_w)
            if any(e["ev"] == "session" for e in events):
                break
            time.sleep(0.02)
        panel.set("footswitch", False)
        link.call("reset")
        link.call("logout")
    assert reported_w and lit_w, "the point did not emit"
    return reported_w, sum(lit_w) / len(lit_w)


def stored_settings(root):
    """The settings on the device's flash, read by the firmware's own module."""
    flash = paths.firmware_module("flash")
    settings = paths.firmware_module("settings")

    return settings.Settings(flash.Flash(), SIM, str(root / "settings.json"),
                             str(root / "settings.prev"))


@needs_micropython
def test_calibrate_makes_the_firmware_count_the_light_the_meter_sees(start_device, tmp_path):
    root = flash_with_a_wrong_calibration(tmp_path / "flash")
    panel_port = free_udp_port()
    port = start_device(root, panel_port)
    reported_w, true_w = reported_and_true_w(port, panel_port, CHECK_DUTY)
    assert true_w / reported_w == pytest.approx(1.25, rel=0.02)  # 25 % more light than counted

    plot = tmp_path / "out" / "x.png"
    plot.parent.mkdir()
    done = laserctl_calibrate(port, "--virtual-panel", str(panel_port), "--duties", DUTIES,
                              "--due-days", "180", "--yes", "--plot", str(plot))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(virtual power meter)") == 4
    assert "Point 2/4: duty 16000 for 1 s. Key on, interlock closed" in done.stdout
    assert "the device is back: STANDBY, calibrated on 2026-11-21, due on 2027-05-20, not " \
           "locked" in done.stdout
    assert plot.stat().st_size > 10000 and os.listdir(plot.parent) == ["x.png"]

    stored = stored_settings(root)
    assert (stored.problem, stored.values["calibrated_on"], stored.due_on()) == \
        (None, DATE, "2027-05-20")
    curve = stored.values["calibration"]
    assert curve[0] == [0, 0.0] and [d for d, _ in curve[2:]] == [8000, 16000, 32000, 60000]
    for duty, watts in curve[2:]:  # the readings: the plant's own curve
        assert watts == pytest.approx(calibrate.design_watts(SIM, duty), rel=0.02), duty

    reported_w, true_w = reported_and_true_w(port, panel_port, CHECK_DUTY)
    assert reported_w == pytest.approx(true_w, rel=0.02)  # the meter and the firmware agree


@needs_micropython
def test_a_point_refused_for_the_key_is_reported_and_nothing_is_written(start_device, tmp_path):
    root = flash_with_a_wrong_calibration(tmp_path / "flash")
    before = (root / "settings.json").read_bytes()
    port = start_device(root, free_udp_port())  # the panel's key stays off: nobody turns it
    done = laserctl_calibrate(port, "--duties", DUTIES, stdin="r\na\n", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("Point 1/4 refused by the device: arm refused: key switch off") == 2
    assert "aborted by the technician: nothing was written" in done.stderr
    assert (root / "settings.json").read_bytes() == before
    assert not (root / "settings.prev").exists() and not list(tmp_path.glob("*.png"))
    with SerialLink(port) as link:
        status = link.wait_ready()
    assert (status["state"], status["service"]) == ("STANDBY", False)  # logged out


@needs_micropython
def test_ctrl_c_during_a_point_stops_the_light_and_logs_out(start_device, tmp_path):
    root = flash_with_a_wrong_calibration(tmp_path / "flash")
    panel_port = free_udp_port()
    port = start_device(root, panel_port)
    tool = laserctl_calibrate(port, "--virtual-panel", str(panel_port), "--duties", "60000",
                              time_s=30, popen=True)
    try:
        read_until(tool.stdout.fileno(), b"EMITTING", timeout=15)
        tool.send_signal(signal.SIGINT)  # as Ctrl-C in its terminal
        assert tool.wait(timeout=15) == 1
    finally:
        if tool.poll() is None:
            tool.kill()
        _, err = tool.communicate()
    assert b"interrupted\nno calibration point is left armed" in err
    with SerialLink(port) as link, VirtualPanel(panel_port) as panel:
        status = link.wait_ready()
        assert panel.snapshot()["optical_w"] == 0.0
        assert not panel.latest["inputs"]["footswitch"]
    assert (status["state"], status["service"]) == ("STANDBY", False)
    assert json.loads((root / "settings.json").read_bytes().split(b"\n")[1])["calibration"][
        -1] == [65535, MAX_W]  # still the wrong one: nothing written

"""`laserctl calibrate --port PORT`: measure the diode's curve with a power meter, point by point,
and store it on the device (docs/calibration.md).

1. A service session (PIN); the device must be in STANDBY, locked by nothing but its settings.
2. For each duty (--duties, else six spread over the board's design curve) the device arms a
   calibration point (`cal_point`: that duty for --time-s s of emission, run like a treatment:
   key, interlock, emission warning, footswitch); the technician holds the footswitch until the
   tone stops and types the power meter's reading. With --virtual-panel (the virtual device
   only) the tool works the switches itself and reads the plant's true power.
3. The curve: [0, 0], the lasing threshold extrapolated from the two lowest lit readings, the
   readings; checked by the firmware's own board rules, with a warning for readings far off the
   design curve. A plot, a table, a confirmation, then `calibrate` and `restart`.

Exit status: 0 stored and applied; 1 the technician aborted, or the readings make no valid curve;
2 bad arguments, or the device could not be reached, refused the PIN or refused a command."""

import copy
import datetime
import math
import sys
import time
from contextlib import suppress
from pathlib import Path

from host_tools import paths, vdevice
from host_tools.serial_link import DeviceError, SerialLink, service_pin
from host_tools.virtual_panel import PanelError, VirtualPanel

DEFAULT_POINTS = 6
LOWEST_FRACTION = 0.05  # the default lowest point, of max_power_w: just above the threshold
TOP_FRACTION = 1.03  # the default top point: over max_power_w, so that the curve reaches it
PLAUSIBLE_PCT = 25  # a reading further off the design curve: most likely the meter's range
BOOT_TIMEOUT_S = 30.0
SILENT_S = 5.0  # the device prints a status line every 250 ms: this long without a line, it is gone
PRESS_AFTER_S = 0.2  # the virtual footswitch: let the firmware see it released in READY first
HINT_AFTER_S = 8.0  # still READY this long after arming: the footswitch was likely held through
SESSION_ENDS = {"KEY_OFF": "the key switch was turned off", "INTERLOCK_OPEN": "the interlock "
                "opened", "READY_TIMEOUT": "the footswitch was not pressed in time",
                "PAUSED_TIMEOUT": "it stayed paused too long", "DISARMED": "it was disarmed",
                "FAULT": "the device latched a fault", "STANDBY": "it ended"}


class Aborted(Exception):
    """The technician stopped, or the readings cannot make a valid curve: exit status 1."""


class PointFailed(Exception):
    """A calibration point was refused or did not complete; the message is for the technician."""


# -- the duties and the curve --------------------------------------------------------------------


def parse_duties(text):
    """`text`: --duties, "8000,16000,...": rising whole duties 1..65535; ValueError if not."""
    try:
        duties = [int(part) for part in text.split(",")]
    except ValueError:
        duties = []
    if not duties or any(not 1 <= d <= 65535 for d in duties) or duties != sorted(set(duties)):
        raise ValueError("--duties: rising whole numbers within 1..65535 separated by commas, "
                         "got %r" % text)
    return duties


def design_watts(board, duty_u16):
    """The design curve of `board` (its board file's diode.calibration) at `duty_u16`, in W."""
    calibration = paths.firmware_module("calibration")

    diode = board["diode"]
    return calibration.Calibration(diode["calibration"], board["laser"]["pwm_freq_hz"],
                                   diode["max_power_w"]).watts(duty_u16)


def default_duties(board, max_power_w, count=DEFAULT_POINTS):
    """`count` duties spread evenly in power over `board`'s design curve, from just above the
    lasing threshold to a little over `max_power_w`, aligned to the PWM's steps as the device
    aligns them."""
    calibration = paths.firmware_module("calibration")

    step = 1 << (16 - calibration.pwm_resolution_bits(board["laser"]["pwm_freq_hz"]))
    points = board["diode"]["calibration"]
    duties = []
    for i in range(count):
        power_w = max_power_w * (LOWEST_FRACTION + (TOP_FRACTION - LOWEST_FRACTION) * i
                                 / (count - 1))
        duty = next((d0 + (d1 - d0) * (power_w - w0) / (w1 - w0) for (d0, w0), (d1, w1)
                     in zip(points, points[1:], strict=False) if w0 < power_w <= w1), 65535)
        duties.append(min(round(duty / step) * step, 65536 - step))
    return duties


def threshold_duty(readings):
    """Where the line through the two lowest `readings` [(duty, watts)] with light crosses 0 W,
    rounded, if that is above 0 and below the lowest measured duty; else None."""
    lit = [(d, w) for d, w in sorted(readings) if w > 0]
    if len(lit) < 2 or lit[1][1] <= lit[0][1]:
        return None
    (d0, w0), (d1, w1) = lit[:2]
    duty = round(d0 - w0 * (d1 - d0) / (w1 - w0))
    return duty if 0 < duty < min(d for d, _ in readings) else None


def fit_curve(readings):
    """The calibration points for `readings` [(duty, watts)]: [0, 0], the threshold (if found),
    then the readings by duty."""
    threshold = threshold_duty(readings)
    return [[0, 0.0]] + ([[threshold, 0.0]] if threshold is not None else []) + \
        [[d, round(float(w), 3)] for d, w in sorted(readings)]


def check_readings(readings, board, max_power_w):
    """(problems, warnings) about `readings` [(duty, watts)], rising by duty, on `board` whose
    curve must reach `max_power_w`: a falling reading or a top below it refuses the curve; a
    reading more than PLAUSIBLE_PCT off the design curve is only a warning."""
    problems, warnings = [], []
    for (d0, w0), (d1, w1) in zip(readings, readings[1:], strict=False):
        if w1 < w0:
            problems.append("the reading at duty %d (%.3f W) is lower than the one at duty %d "
                            "(%.3f W): the light cannot fall as the duty rises; measure both "
                            "again" % (d1, w1, d0, w0))
    top_duty, top_w = readings[-1]
    if top_w < max_power_w:
        problems.append("the highest reading, %.3f W at duty %d, is below max_power_w (%g W): %s"
                        % (top_w, top_duty, max_power_w, _advice(readings, max_power_w)))
    for duty, watts in readings:
        design_w = design_watts(board, duty)
        if design_w > 0 and abs(watts / design_w - 1) * 100 > PLAUSIBLE_PCT:
            warnings.append("duty %d: %.3f W is %+.0f %% off the design curve's %.3f W: is the "
                            "power meter on the right range?"
                            % (duty, watts, (watts / design_w - 1) * 100, design_w))
    return problems, warnings


def _advice(readings, max_power_w):
    """Which duty to add so that `readings` reach `max_power_w`: the top two, extrapolated."""
    (d0, w0), (d1, w1) = ([(0, 0.0)] + readings)[-2:]
    duty = d1 + (TOP_FRACTION * max_power_w - w1) * (d1 - d0) / (w1 - w0) if w1 > w0 else 1e9
    if duty <= 65535:
        return "add a higher duty, about %d" % (math.ceil(duty / 100) * 100)
    if d1 < 65535:
        return "add full duty, 65535"
    return "the diode does not reach it even at full duty"


def firmware_problem(curve, board, max_power_w):
    """What the firmware's own board check (board.py, which the device runs on a `calibrate`)
    says of `curve` on `board` with the device's `max_power_w`; None if it accepts it."""
    board_file = paths.firmware_module("board")

    candidate = copy.deepcopy(board)
    candidate["diode"]["calibration"] = [list(p) for p in curve]
    candidate["diode"]["max_power_w"] = max_power_w
    try:
        board_file.validate(candidate)
    except board_file.BoardError as e:
        return str(e)
    return None


# -- the report ----------------------------------------------------------------------------------


def table(points):
    """`points` [(duty, reading W, the device's estimate W)] as a table, deviation and all."""
    lines = ["%8s %10s %15s %10s" % ("duty", "reading W", "device said W", "deviation")]
    for duty, watts, estimate_w in points:
        deviation = "%+9.1f%%" % ((watts / estimate_w - 1) * 100) if estimate_w else "-"
        lines.append("%8d %10.3f %15.3f %10s" % (duty, watts, estimate_w, deviation))
    return "\n".join(lines)


def plot(path, points, curve, board, max_power_w):
    """Draw `points` [(duty, reading W, the device's estimate W)], the new `curve`, `board`'s
    design curve and `max_power_w` to the PNG `path`, atomically; returns the absolute path."""
    from matplotlib.figure import Figure

    from host_tools.plot import write_png  # atomic; its import selects the Agg backend

    ax = (fig := Figure(figsize=(9, 6), dpi=100)).add_subplot()
    design = board["diode"]["calibration"]
    ax.plot(*zip(*design, strict=True), "--", color="grey",
            label="curve in use: the design curve of board file %s" % board["name"])
    ax.plot([p[0] for p in points], [p[2] for p in points], "x", color="grey",
            label="the device's own estimate at each point, before")
    ax.plot(*zip(*curve, strict=True), "-", color="#1f5fbf", label="new calibration")
    ax.plot([p[0] for p in points], [p[1] for p in points], "o", color="black",
            label="power meter readings")
    ax.axhline(max_power_w, color="#8b0000", linewidth=1, label="max_power_w %g W" % max_power_w)
    ax.set(xlabel="PWM duty (duty_u16)", ylabel="optical power, W", xlim=(0, 65535),
           title="diode calibration, board %s" % board["name"])
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path = Path(path).resolve()
    write_png(fig, path)
    return path


def _ask(prompt):
    """The technician's answer to `prompt`; Aborted at the end of the input."""
    try:
        return input(prompt).strip()
    except EOFError:
        raise Aborted("no answer (end of input)") from None


def ask_meter_w():
    """The power meter's reading in watts, asked again until it is a number >= 0."""
    while True:
        text = _ask("  power meter reading, W: ")
        with suppress(ValueError):
            if math.isfinite(watts := float(text)) and watts >= 0:
                return watts
        print("  a number of watts, 0 or more (e.g. 7.85), please")


# -- the device ----------------------------------------------------------------------------------


def check_ready(status):
    """DeviceError unless `status` (the device's) allows calibration points: STANDBY, and
    locked by nothing but missing or unusable settings (what a calibration cures)."""
    problem = (status.get("settings") or {}).get("problem")
    if status["state"] != "STANDBY":
        raise DeviceError("the device is in %s, not STANDBY: finish or reset it first"
                          % status["state"])
    if status.get("locked") not in (None, problem) or status.get("blocked"):
        raise DeviceError("the device refuses to arm: %s" % (status.get("locked")
                                                             or status["blocked"]))


def back_to_standby(link):
    """Stop whatever point `link`'s device has armed (dark at once) and leave COMPLETE or FAULT
    (a fault whose cause remains stays latched, and says so)."""
    link.request("disarm")  # refused, harmlessly, when nothing is armed
    if link.call("status")["state"] in ("COMPLETE", "FAULT"):
        reply = link.request("reset")
        if not reply["ok"]:
            print("  " + reply["error"])


def follow_point(link, panel):
    """Follow the armed point on `link` until its session ends; returns (how it ended, fault
    code or None, the `panel`'s optical_w samples with light: only while EMITTING)."""
    lit_w, heard_at, fault, hint_at = [], time.monotonic(), None, time.monotonic() + HINT_AFTER_S
    while True:
        events = link.poll()
        if events:
            heard_at = time.monotonic()
        elif time.monotonic() - heard_at > SILENT_S:
            raise DeviceError("the device went silent during the point")
        if hint_at is not None and time.monotonic() > hint_at:
            print("  still READY? Release the footswitch, then press and hold it")
            hint_at = None
        if panel is not None:
            lit_w += [s["optical_w"] for s in panel.poll() if s["optical_w"] > 0]
        for ev in events:
            kind, state = ev.get("ev"), ev.get("state")
            if kind == "state" and state == "EMITTING":
                print("  EMITTING (the device counts %.3f W)" % ev["power_w"])
                hint_at = None
            elif kind == "state" and state == "PAUSED":
                print("  PAUSED: the footswitch was released; press and hold it again")
            elif kind == "fault":
                fault = ev.get("code")
            elif kind == "veto":
                print("  the supervisor withholds the light: %s" % ev.get("why"))
            elif kind == "session":
                return ev.get("end"), fault, lit_w
            elif kind == "status" and state in ("STANDBY", "COMPLETE", "FAULT"):
                return state, fault or ev.get("fault"), lit_w  # its session line was lost
        time.sleep(0.02)


def measure_point(link, panel, duty, time_s, label):
    """One point: `duty` for `time_s` s on `link`'s device, worked by the technician or by the
    virtual `panel` (or None); `label` names it. Returns (aligned duty, reading W, the device's
    estimate W); PointFailed if it was refused or did not complete."""
    print("%s: duty %d for %d s. Key on, interlock closed, then press and hold the footswitch "
          "until the tone stops." % (label, duty, time_s))
    if panel is not None:
        for name, value in (("footswitch", False), ("key", True), ("interlock", True)):
            panel.set(name, value)
    reply = link.request("cal_point", duty=duty, time_s=time_s)
    if not reply["ok"]:
        raise PointFailed("%s refused by the device: %s" % (label, reply["error"]))
    print("  READY, emission warning: duty %d, %.3f W by the curve in use"
          % (reply["duty"], reply["power_w"]))
    if panel is not None:
        time.sleep(PRESS_AFTER_S)
        panel.set("footswitch", True)
        print("  (virtual panel: key on, interlock closed, footswitch held)")
    try:
        end, fault, lit_w = follow_point(link, panel)
    finally:
        if panel is not None:
            panel.set("footswitch", False)
    if end != "COMPLETE":
        raise PointFailed("%s did not complete: %s%s" % (label, SESSION_ENDS.get(end, end),
                                                          " (%s)" % fault if fault else ""))
    if panel is None:
        watts = ask_meter_w()
    elif not lit_w:
        raise PanelError("the virtual power meter saw no light during the point")
    else:
        watts = sum(lit_w) / len(lit_w)
        print("  power meter reading, W: %.3f (virtual power meter)" % watts)
    link.call("reset")  # COMPLETE -> STANDBY
    return reply["duty"], round(watts, 3), reply["power_w"]


def measure(link, panel, pin, duties, time_s):
    """Every duty of `duties` as a point of `time_s` s (see measure_point), each retried or
    aborted as the technician says; the service session reopened with `pin` if it timed out.
    Returns [(aligned duty, reading W, the device's estimate W)]."""
    points = []
    for index, duty in enumerate(duties, 1):
        label = "Point %d/%d" % (index, len(duties))
        while True:
            try:
                if not link.call("status")["service"]:
                    link.call("service", pin=pin)
                points.append(measure_point(link, panel, duty, time_s, label))
                break
            except PointFailed as e:
                print("  %s" % e)
                back_to_standby(link)
                if not _ask("  [r]etry this point or [a]bort? ").lower().startswith("r"):
                    raise Aborted("aborted by the technician: nothing was written") from None
    return points


def make_safe(link, panel):
    """On the way out before the restart: no point left armed on `link`'s device, the virtual
    `panel`'s footswitch let go, the service session closed. Returns whether the device answered
    the disarm (else nobody knows what it does); never raises."""
    link.timeout_s = 2.0
    answered = True
    try:
        back_to_standby(link)  # first: a disarm is dark in the same tick
    except DeviceError:
        answered = False
    if panel is not None:
        with suppress(PanelError, OSError):
            panel.set("footswitch", False, timeout_s=1.0)
    with suppress(DeviceError):
        link.request("logout")
    return answered


# -- the command ---------------------------------------------------------------------------------


def run(link, panel, pin, board, args, date, plot_path, progress):
    """The calibration on `link` (see the module's docstring) with the virtual `panel` or None,
    the service `pin`, the `board` dict, the command's `args`, `date` and `plot_path`; appends
    "stored" and "restarted" to `progress` as they happen. Returns the exit status."""
    status = link.wait_ready()
    clock = link.sync_clock()
    if clock:
        print(clock)
    check_ready(status)
    link.call("service", pin=pin)
    # A limit lowered on this device is what its curve must reach (settings.py checks that).
    max_power_w = min(board["diode"]["max_power_w"],
                      (status.get("settings") or {}).get("limits", {}).get("max_power_w", 1e9))
    duties = parse_duties(args.duties) if args.duties else default_duties(board, max_power_w)
    print("%d points of %d s, up to max_power_w %g W: put the power meter's head at the "
          "treatment distance" % (len(duties), args.time_s, max_power_w))
    points = measure(link, panel, pin, duties, args.time_s)
    readings = [(duty, watts) for duty, watts, _ in points]
    problems, warnings = check_readings(readings, board, max_power_w)
    curve = fit_curve(readings)
    refusal = None if problems else firmware_problem(curve, board, max_power_w)
    problems += ["the firmware's check: " + refusal] if refusal else []
    print(table(points) + "\nnew curve: %s" % curve)
    try:
        print("plot: %s" % plot(plot_path, points, curve, board, max_power_w))
    except OSError as e:  # the readings matter more than their picture
        print("warning: no plot: %s" % e)
    for line in ["warning: " + w for w in warnings] + ["refused: " + p for p in problems]:
        print(line)
    if problems:
        raise Aborted("the readings make no valid curve: nothing was written to the device")
    if not (args.yes or _ask("write this calibration to the device? [y/N] ").lower() == "y"):
        raise Aborted("not written: the device keeps its calibration")
    if not link.call("status")["service"]:
        link.call("service", pin=pin)
    stored = link.call("calibrate", points=curve, date=date, due_days=args.due_days)["settings"]
    progress.append("stored")
    print("stored: calibrated on %s, due on %s; restarting the device to apply it"
          % (stored["calibrated_on"], stored["due_on"]))
    link.call("restart")
    # Its boot line says the old loop is gone (it may be lost in a chip's reset noise: go on).
    link.wait_event("boot", BOOT_TIMEOUT_S)
    status = link.wait_ready(BOOT_TIMEOUT_S)
    progress.append("restarted")
    settings = status.get("settings") or {}
    print("the device is back: %s, calibrated on %s, due on %s, %s"
          % (status["state"], settings.get("calibrated_on"), settings.get("due_on"),
             "not locked" if status["locked"] is None else "LOCKED: %s" % status["locked"]))
    return 0 if status["locked"] is None and settings.get("calibrated_on") == date else 2


def _arguments(args):
    """(board dict, date, plot path) from the command's `args`, checked before any light:
    ValueError naming a bad one. The date and due days by the firmware's own rules."""
    settings = paths.firmware_module("settings")

    _, board = vdevice.load_board(args.board)
    date = args.date or datetime.date.today().isoformat()
    try:
        settings.due_on(date, args.due_days)
    except settings.SettingsError as e:
        raise ValueError("%s (--date, --due-days)" % e) from None
    if args.duties:
        parse_duties(args.duties)
    if not 1 <= args.time_s <= 60:
        raise ValueError("--time-s: 1..60 s of emission per point, got %d" % args.time_s)
    plot_path = Path(args.plot or "calibration-%s.png" % date).resolve()
    if not plot_path.parent.is_dir():
        raise ValueError("--plot: no folder %s" % plot_path.parent)
    return board, date, plot_path


def main(args):
    """laserctl calibrate, with `args` port, pin, board, duties, time_s, date, due_days, plot,
    yes and virtual_panel (see host_tools/cli.py); returns the exit status."""
    try:
        board, date, plot_path = _arguments(args)
    except (ValueError, OSError) as e:
        print("laserctl calibrate: %s" % e, file=sys.stderr)
        return 2
    pin = service_pin(args.pin)
    panel = link = None
    progress, status = [], 2
    try:
        try:
            if args.virtual_panel is not None:
                panel = VirtualPanel(args.virtual_panel)
            link = SerialLink(args.port)
            return run(link, panel, pin, board, args, date, plot_path, progress)
        except BaseException:
            # Ctrl-C too: never a calibration point left armed.
            if link is not None and "restarted" not in progress:
                progress.append("safe" if make_safe(link, panel) else "unsafe")
            raise
        finally:
            for end in (link, panel):
                if end is not None:
                    end.close()
    except KeyboardInterrupt:
        print("\nlaserctl calibrate: interrupted", file=sys.stderr)
        status = 1
    except Aborted as e:
        print("laserctl calibrate: %s" % e, file=sys.stderr)
        status = 1
    except (DeviceError, PanelError) as e:
        print("laserctl calibrate: %s" % e, file=sys.stderr)
    if "unsafe" in progress:
        print("THE DEVICE DID NOT ANSWER THE DISARM: turn its key switch off", file=sys.stderr)
    elif "stored" in progress and "restarted" not in progress:
        print("the new calibration is stored: restart the device to apply it", file=sys.stderr)
    elif "safe" in progress:
        print("no calibration point is left armed; the service session is closed",
              file=sys.stderr)
    return status

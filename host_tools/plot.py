"""`laserctl plot REPORT --out FILE.png`: one treatment session drawn on one PNG.

REPORT is a scenario report (`laserctl scenario --report`: the plant's true values next to what
the firmware reported) or a downloaded trace (the JSON lines the device printed on its serial
port, as `laserctl console --log` records them: only what the firmware reported). Both become one
`Session`, drawn by one `draw`: optical power, heatsink temperature and dose over a shared time
axis, states as background bands, faults as vertical lines named above the panels (never over a
trace), the board's thermal limits (warning, derating, shutdown) as lines on the temperature axis.
The title says what the session was, as far as the input tells: when (the wall clock's utc_s),
the preset or treatment, the firmware's version, the device and its board.

Exit status: 0 when the PNG was written; 2 when the input could not be read or held nothing to
plot (and then no PNG is written)."""

import contextlib
import datetime
import json
import math
import os
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation

from host_tools import device_lines, vdevice
from host_tools.report import dose_bound

# No display: draw straight to files. Figure needs no pyplot; this covers anything that
# imports pyplot later in the same process.
matplotlib.use("Agg")

FIGSIZE_IN = (12.0, 9.0)
DPI = 100  # the PNG is FIGSIZE_IN * DPI pixels: 1200 x 900
_TICKS_PERIOD = 1 << 30  # time.ticks_ms() wraps here on the ESP32 (firmware/lib/ticks.py)
# Fixed colours for the firmware's states (controller.STATE_NAMES) so that every plot reads
# alike; a state not listed gets a spare colour.
STATE_COLOURS = {"BOOT": "#bbbbbb", "STANDBY": "#d9d9d9", "READY": "#ffe680", "EMITTING": "#ff9966",
                 "PAUSED": "#99ccff", "COMPLETE": "#99e699", "FAULT": "#ff7f7f"}
_SPARE_COLOURS = ("#c299ff", "#ffb3e6", "#80e5e5", "#e6cc99")
TRUE_COLOUR = "#1f5fbf"  # the plant's true values; what the firmware reported is black
FAULT_COLOUR, INJECTED_COLOUR = "#8b0000", "#6a1b9a"
# The board's thermal levels (board file "thermal", firmware/lib/thermal.py): drawn on the
# temperature axis as (key in the board file, gid suffix, label, colour).
THERMAL_LIMITS = (("warning_c", "warning", "warning", "#d4a000"),
                  ("derate_start_c", "derate", "derating from", "#e65c00"),
                  ("shutdown_c", "shutdown", "shutdown", "#c00000"))
# The names above the power panel (faults, injected faults): rows of text in points above its
# top edge, clear of the injected faults' markers on that edge.
LABEL_FONT_PT = 8
LABEL_BASE_PT = 7.0
LABEL_ROW_PT = 11.0
LABEL_GAP_PX = 6  # between two names in one row


class PlotError(ValueError):
    """The input cannot be plotted; the message names the file and the problem."""


@dataclass
class Session:
    """What one plot shows, whichever file it came from. Times are seconds from the start."""
    name: str  # the input file's name: the title of last resort
    measured: list  # (t_s, state, power_w, temp_c or None, delivered_j) the firmware reported
    states: list  # (t_s, state): each holds until the next
    faults: list  # (t_s, code) the firmware reported
    end_s: float
    target_j: float | None = None
    delivered_j: float | None = None
    # Above delivered_j: a session a reset interrupted is known within a bound (docs/memory.md).
    delivered_max_j: float | None = None
    final_state: str | None = None
    description: str = ""
    simulated: bool = False  # True: the plant's true values below are known
    optical_w: list = field(default_factory=list)  # (t_s, watts), each held until the next
    heatsink_c: list = field(default_factory=list)  # (t_s, temp_c)
    injected: list = field(default_factory=list)  # (t_s, fault name) the simulation put in
    # What the session was, where the input says: the wall clock (seconds since 1970 UTC), the
    # preset or treatment in words, the firmware's version, the device's id, its board's name.
    utc_s: int | None = None
    treatment: str | None = None
    firmware: str | None = None
    device: str | None = None
    board: str | None = None
    # {"warning_c", "derate_start_c", "shutdown_c"} of the board, where it is known
    thermal_limits: dict | None = None


def from_report(report, path):
    """A Session from a scenario report (host_tools.report.build_report) read from `path`."""
    if not isinstance(report, dict) or not isinstance(report.get("trace"), dict):
        raise PlotError("%s: not a scenario report (it has no \"trace\")" % path)
    trace = report["trace"]
    try:
        measured = [_measured(*row) for row in trace.get("measured", [])]
        optical_w = [(float(t), float(w)) for t, w in trace.get("optical_w", [])]
        heatsink_c = [(float(t), float(c)) for t, c in trace.get("heatsink_c", [])]
        times = [row[0] for row in measured + optical_w + heatsink_c]
        return Session(
            name=Path(path).name, measured=measured,
            states=[(float(s["at_s"]), str(s["state"])) for s in report.get("states", [])],
            faults=[(float(f["at_s"]), str(f["code"])) for f in report.get("faults", [])],
            end_s=max([float(report.get("ended_s") or 0.0)] + times),
            target_j=_float(report.get("target_j")), delivered_j=_float(report.get("delivered_j")),
            delivered_max_j=_float(report.get("delivered_max_j")),
            final_state=report.get("final_state"), simulated=True,
            description=str(report.get("description") or ""),
            optical_w=optical_w, heatsink_c=heatsink_c,
            injected=[(float(f["at_s"]), str(f["fault"]))
                      for f in report.get("faults_injected", [])],
            **_report_identity(report))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PlotError("%s: an ill-formed report (%s: %s)" % (path, type(e).__name__, e)) from e


def _report_identity(report):
    """What a scenario report says the session was: its board and treatment, and from the
    device's journal (its boot records) the firmware, the device and the wall clock."""
    protocol = report.get("protocol_name")
    if isinstance(protocol, str):
        treatment = device_lines.selection_name({"protocol": protocol,
                                                 "skin_type": report.get("skin_type")})
    else:
        treatment = treatment_text(report.get("treatment"))
    records = (report.get("journal") or {}).get("records") or []
    found = _identity([r for r in records if isinstance(r, dict)])
    board = report.get("board")
    return dict(found, treatment=treatment, board=board if isinstance(board, str) else None)


def treatment_text(spec):
    """A treatment spec in words: "10 W, 8 J/cm² over 100 cm²"; None for none."""
    if not isinstance(spec, dict):
        return None
    try:
        return "%g W, %g J/cm² over %g cm²" % (spec["power_w"], spec["dose_j_cm2"],
                                               spec["area_cm2"])
    except (KeyError, TypeError):
        return "custom treatment"


def _identity(objects):
    """{"utc_s", "firmware", "device"} from the device's lines and records, in the order they
    came: the latest version and device id named; the wall clock a clock reply gave (the first
    known: when the host connected), else the latest a journal record carries."""
    found = {"utc_s": None, "firmware": None, "device": None}
    record_utc_s = None
    for obj in objects:
        for record in [obj] + [r for r in obj.get("records") or () if isinstance(r, dict)]:
            if isinstance(record.get("version"), str):
                found["firmware"] = record["version"]
            if isinstance(record.get("device"), str):
                found["device"] = record["device"]
        utc_s = obj.get("utc_s")
        if _whole(utc_s) and found["utc_s"] is None and "ev" not in obj and "n" not in obj:
            found["utc_s"] = utc_s  # a clock reply: the time now
        for record in [obj] + [r for r in obj.get("records") or () if isinstance(r, dict)]:
            if _whole(record.get("utc_s")) and "n" in record:
                record_utc_s = record["utc_s"]  # a journal record's
    if found["utc_s"] is None:
        found["utc_s"] = record_utc_s
    return found


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def from_lines(text, path):
    """A Session from the device's serial output read from `path`: one JSON object per line.
    Replies ({"ok": ...}) and what is not a JSON object (a traceback, a banner) are skipped."""
    lines = device_lines.split(text)[0]
    objects = [obj for obj in map(device_lines.parse, device_lines.text(text).splitlines())
               if isinstance(obj, dict)]  # events and replies, in order: what the session was
    identity = _identity(objects)
    selected = [obj["selected"] for obj in objects if "selected" in obj and "ev" not in obj]
    identity["treatment"] = device_lines.selection_name(selected[-1]) if selected else None
    boards = [obj["board"] for obj in objects if obj.get("ev") == "boot"
              and isinstance(obj.get("board"), str)]
    identity["board"] = boards[-1] if boards else None
    boots = [i for i, obj in enumerate(lines) if obj["ev"] == "boot"]
    # The clock starts again at every boot: a log spanning several draws the last one's lines.
    if boots and any("t_ms" in obj for obj in lines[boots[-1]:]):
        lines = lines[boots[-1]:]
    events = [obj for obj in lines if "t_ms" in obj]  # some error lines have none
    if not events:
        raise PlotError("%s: no event lines of the device ({\"ev\": ..., \"t_ms\": ...})" % path)
    for obj in events:
        if not isinstance(obj["t_ms"], int) or isinstance(obj["t_ms"], bool):
            raise PlotError("%s: t_ms is not a whole number in %s" % (path, json.dumps(obj)[:80]))
    first_ms = events[0]["t_ms"]

    def t_s(obj):
        # ticks_ms() wraps at 2**30: the modular difference is the time elapsed (for a log
        # shorter than 12 days, within one boot).
        return ((obj["t_ms"] - first_ms) % _TICKS_PERIOD) / 1000.0

    measured, states, faults, target_j = [], [], [], None
    for obj in events:
        try:
            if obj["ev"] in device_lines.STATUS_EVENTS:
                row = _measured(t_s(obj), obj["state"], obj["power_w"], obj.get("temp_c"),
                                obj["delivered_j"])
                measured.append(row)
                # From the status lines too: a log begun mid-session has no state line yet.
                if not states or states[-1][1] != row[1]:
                    states.append(row[:2])
                target_j = _float(obj.get("target_j"))
            elif obj["ev"] == "fault":
                faults.append((t_s(obj), str(obj["code"])))
        except (KeyError, TypeError, ValueError) as e:
            raise PlotError("%s: an ill-formed %s line (%s: %s): %s" % (
                path, obj["ev"], type(e).__name__, e, json.dumps(obj)[:80])) from e
    _, final_state, _, _, delivered_j = measured[-1] if measured else (None,) * 5
    try:
        delivered_max_j = _float(dose_bound(events, delivered_j))
    except (TypeError, ValueError) as e:
        raise PlotError("%s: an ill-formed session line (%s: %s)"
                        % (path, type(e).__name__, e)) from e
    return Session(name=Path(path).name, measured=measured, states=states, faults=faults,
                   end_s=max(t_s(obj) for obj in events), target_j=target_j,
                   delivered_j=delivered_j, delivered_max_j=delivered_max_j,
                   final_state=final_state, **identity)


def _measured(t_s, state, power_w, temp_c, delivered_j):
    """One row of what the firmware reported, as numbers (temp_c None: no reading)."""
    return float(t_s), str(state), float(power_w), _float(temp_c), float(delivered_j)


def _float(value):
    return None if value is None else float(value)


def thermal_limits(board):
    """The thermal levels of `board` (a name in boards/ or a board file), read with the
    firmware's own checks: {"warning_c", "derate_start_c", "shutdown_c"}. PlotError if it cannot
    be read."""
    try:
        _, data = vdevice.load_board(board)
    except (ValueError, OSError) as e:
        raise PlotError("board %s: %s" % (board, e)) from e
    return {key: float(data["thermal"][key]) for key, _, _, _ in THERMAL_LIMITS}


def load(path, board=None):
    """A Session from a report (one JSON document) or a trace (JSON lines: a .jsonl file, or any
    file that is not one JSON document). `board`: the board whose thermal limits to draw (a
    name or a file), else the one the input names, if any."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PlotError("%s: cannot read it (%s)" % (path, e.strerror or e)) from e
    except UnicodeDecodeError as e:
        raise PlotError("%s: not a text file (%s)" % (path, e)) from e
    try:
        document = None if Path(path).suffix.lower() == ".jsonl" else json.loads(text)
    except ValueError as e:
        if not any(device_lines.split(text)[:2]):  # no JSON lines either: say what is wrong
            raise PlotError("%s: neither a JSON report nor the device's JSON lines (%s)"
                            % (path, e)) from e
        document = None
    # A one-line log is one JSON document too, but an event line is no report.
    if document is None or (isinstance(document, dict) and ("ev" in document or "ok" in document)):
        session = from_lines(text, path)
    else:
        session = from_report(document, path)
    if not session.measured and not session.optical_w:
        raise PlotError("%s: nothing to plot (no status lines and no optical trace)" % path)
    if board is not None:
        session.board = board
    if session.board is not None:
        try:
            session.thermal_limits = thermal_limits(session.board)
        except PlotError:
            if board is not None:
                raise  # the user's own choice: say what is wrong with it
            # A board this checkout does not know (the input names it): no limits to draw.
    return session


def summary(session):
    """The figure's one line: the dose against its target, how it ended, the faults."""
    def joules(value):
        return "-" if value is None else "%.1f J" % value

    low, high = session.delivered_j, session.delivered_max_j
    if low is not None and high is not None and high > low:
        delivered = "delivered between %s and %s" % (joules(low), joules(high))
        if session.target_j:
            delivered += " (%.1f-%.1f %%)" % (100.0 * low / session.target_j,
                                              100.0 * high / session.target_j)
    else:
        delivered = "delivered %s" % joules(low)
        if session.target_j and low is not None:
            delivered += " (%.1f %%)" % (100.0 * low / session.target_j)
    return "   |   ".join([
        "target %s" % joules(session.target_j), delivered,
        "final state %s" % (session.final_state or "-"),
        "faults: %s" % (", ".join(code for _, code in session.faults) or "none"),
        "simulation: true and measured" if session.simulated else "device log: measured only"])


def identity(session):
    """What the session was, in one line, as far as the input tells: "2026-05-01 14:03 UTC ·
    knee, skin type V · firmware 0.2.0 · device 240ac4000001 · board sim"; "" if it tells none."""
    parts = []
    if session.utc_s is not None:
        # A clock no calendar holds: no date rather than a wrong one.
        with contextlib.suppress(ValueError, OverflowError, OSError):
            parts.append(datetime.datetime.fromtimestamp(session.utc_s, datetime.timezone.utc)
                         .strftime("%Y-%m-%d %H:%M UTC"))
    if session.treatment:
        parts.append(session.treatment)
    if session.firmware:
        parts.append("firmware " + session.firmware)
    if session.device:
        parts.append("device " + session.device)
    if session.board:
        board = session.board
        parts.append("board " + (Path(board).stem if board.endswith(".json") else board))
    return " · ".join(parts)


def title_text(session, title=None):
    """The figure's title: `title` (--title), else the report's description, over the identity
    line; the input's file name where there is neither."""
    lines = []
    for line in (title or session.description, identity(session)):
        lines += textwrap.wrap(line or "", 110, break_on_hyphens=False)
    return "\n".join(lines) or session.name


def draw(session, title=None):
    """The Figure of a Session. Each thing drawn has a gid ("optical_w", "power_w", "heatsink_c",
    "temp_c", "delivered_j", "target_j", "fault", "fault_label", "injected", "injected_label",
    "limit:warning", "limit:derate", "limit:shutdown", "state:NAME", "summary") by which a test
    finds it."""
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)  # a renderer: the names above the power panel are measured to fit
    ax_power, ax_temp, ax_dose = axes = fig.subplots(3, 1, sharex=True)
    fig.subplots_adjust(left=0.07, right=0.81, bottom=0.07, hspace=0.12)
    title = title_text(session, title)
    fig.suptitle(title, fontsize=13, y=0.985)

    if session.optical_w:  # a step series from 0 (dark) to the end, its last value held
        rows = [(0.0, 0.0)] + session.optical_w + [(session.end_s, session.optical_w[-1][1])]
        ax_power.plot(*zip(*rows, strict=True), drawstyle="steps-post", color=TRUE_COLOUR,
                      lw=2.2, label="optical, true (plant)", gid="optical_w")
    if session.heatsink_c:
        ax_temp.plot(*zip(*session.heatsink_c, strict=True), color=TRUE_COLOUR, lw=2.2,
                     label="true (plant)", gid="heatsink_c")
    if session.measured:
        t_s, _, power_w, temp_c, delivered_j = zip(*session.measured, strict=True)
        ax_power.plot(t_s, power_w, drawstyle="steps-post", color="black", lw=1,
                      ls="--" if session.simulated else "-", label="reported (firmware)",
                      gid="power_w")
        ax_temp.plot(t_s, [math.nan if c is None else c for c in temp_c],  # NaN: a gap
                     color="black", lw=1, gid="temp_c",
                     label="measured (firmware)" if session.simulated else "measured only")
        ax_dose.plot(t_s, delivered_j, color="black", lw=1.5, label="delivered (firmware)",
                     gid="delivered_j")
    if session.target_j is not None:
        ax_dose.axhline(session.target_j, color="#2e7d32", ls=":", lw=1.5,
                        label="target %g J" % session.target_j, gid="target_j")
    for key, name, label, colour in THERMAL_LIMITS if session.thermal_limits else ():
        value = session.thermal_limits[key]
        ax_temp.axhline(value, color=colour, ls="--", lw=1.2, zorder=2,
                        label="%s %g °C" % (label, value), gid="limit:" + name)

    colours = {}  # {state: colour}, in the order the states first appear
    for _, state in session.states:
        spare = _SPARE_COLOURS[len(colours) % len(_SPARE_COLOURS)]
        colours.setdefault(state, STATE_COLOURS.get(state, spare))
    for ax in axes:
        _mark_states_and_faults(ax, session, colours, named=ax is ax_power)

    ax_power.set(ylabel="optical power (W)", ylim=(0, None))
    ax_temp.set(ylabel="heatsink (°C)")
    ax_dose.set(ylabel="dose (J)", ylim=(0, None), xlabel="time (s)",
                xlim=(0, max(session.end_s, 1e-3)))
    rows = _name_faults(ax_power, session)
    # From the top down, in points: the title's lines, the summary, the rows of names, the panels.
    height_pt = FIGSIZE_IN[1] * 72
    summary_pt = 10 + 16 * (title.count("\n") + 1) + 16  # its first line's baseline
    summary_text = "\n".join(textwrap.wrap(summary(session), 150))  # many faults: lines
    top_pt = summary_pt + 12 * summary_text.count("\n") + 8 + LABEL_BASE_PT + \
        LABEL_ROW_PT * max(rows, 1)
    fig.text(0.5, 1 - summary_pt / height_pt, summary_text, ha="center", va="baseline",
             fontsize=9.5, gid="summary")
    fig.subplots_adjust(top=1 - top_pt / height_pt)
    # The faults need no legend: each line or marker has its name next to it.
    handles = [Patch(color=colour, alpha=0.6, label=state) for state, colour in colours.items()]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.82, 0.07), fontsize=8.5,
               title="states", frameon=False)
    return fig


def _mark_states_and_faults(ax, session, colours, named):
    """The states as background bands, reported faults as lines, injected ones as markers on
    the panel's top edge; the legend of the panel's series. (The names: _name_faults.)"""
    ends = [t for t, _ in session.states[1:]] + [session.end_s] if session.states else []
    for (start_s, state), end_s in zip(session.states, ends, strict=True):
        ax.axvspan(start_s, end_s, color=colours[state], alpha=0.35, lw=0, zorder=0,
                   gid="state:" + state)
    edge = ax.get_xaxis_transform()  # x in seconds, y from 0 (bottom) to 1 (top)
    for t, _ in session.faults:
        ax.axvline(t, color=FAULT_COLOUR, lw=1.2, zorder=3, gid="fault")
    for t, _ in session.injected:
        ax.plot(t, 1.0, marker="v", color=INJECTED_COLOUR, ms=9, clip_on=False, zorder=4,
                transform=edge, gid="injected")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)


def _name_faults(ax, session):
    """Each fault's and injected fault's name above the panel `ax`, over its time: outside the
    panel, so that no name covers a trace; names that would overlap go into rows above one
    another. Returns the number of rows. (The panel's x axis must be final: names are measured
    in pixels.)"""
    names = sorted([(t, code, FAULT_COLOUR, "fault_label") for t, code in session.faults] +
                   [(t, "injected: " + fault, INJECTED_COLOUR, "injected_label")
                    for t, fault in session.injected], key=lambda name: name[0])
    renderer = ax.figure.canvas.get_renderer()
    left, right = ax.get_window_extent(renderer).intervalx
    rows = []  # the right end (px) of the last name in each row
    for t, text, colour, gid in names:
        x_px = ax.transData.transform((t, 0))[0]
        label = ax.text(t, 1.0, text, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=LABEL_FONT_PT, color=colour, gid=gid)
        width = label.get_window_extent(renderer).width
        # Kept within the panel's width where it can be: a name at either end leans inwards.
        start = min(max(x_px - width / 2, left), max(right - width, left))
        label.set_horizontalalignment("left")
        label.set_x(ax.transData.inverted().transform((start, 0))[0])
        row = next((i for i, end in enumerate(rows) if start >= end + LABEL_GAP_PX), len(rows))
        if row == len(rows):
            rows.append(0)
        rows[row] = start + width
        label.set_transform(ax.get_xaxis_transform() + ScaledTranslation(
            0, (LABEL_BASE_PT + LABEL_ROW_PT * row) / 72, ax.figure.dpi_scale_trans))
    return len(rows)


def write_png(fig, out):
    """Save atomically: a temporary file in the same folder, renamed over `out` once complete,
    so that a failure never leaves half a PNG (nor destroys the previous one)."""
    out = Path(out)
    tmp = out.with_name(".%s.%d.tmp" % (out.name, os.getpid()))  # open(): the umask's mode
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(args):
    """args.report: the input file; args.out: the PNG; args.title: the title, or None."""
    if Path(args.out).suffix.lower() != ".png":
        print("laserctl plot: --out %s: the file must end in .png" % args.out, file=sys.stderr)
        return 2
    try:
        session = load(args.report, getattr(args, "board", None))
        if session.thermal_limits is None:
            print("thermal limits not drawn: %s" % (
                "the input names no board: give --board NAME" if session.board is None else
                "board %s is not in boards/: give --board FILE" % session.board))
        write_png(draw(session, args.title), args.out)
    except PlotError as e:
        print("laserctl plot: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("laserctl plot: cannot write %s (%s)" % (args.out, e.strerror or e), file=sys.stderr)
        return 2
    print("wrote %s" % args.out)
    return 0

"""`laserctl plot REPORT --out FILE.png`: one treatment session drawn on one PNG.

REPORT is a scenario report (`laserctl scenario --report`: the plant's true values next to what
the firmware reported) or a downloaded trace (the JSON lines the device printed on its serial
port, as `laserctl console --log` records them: only what the firmware reported). Both become one
`Session`, drawn by one `draw`: optical power, heatsink temperature and dose over a shared time
axis, states as background bands, faults as vertical lines.

Exit status: 0 when the PNG was written; 2 when the input could not be read or held nothing to
plot (and then no PNG is written)."""

import json
import math
import os
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from host_tools.scenario import MEASURED_EVENTS, dose_bound, parse_lines

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


def from_report(report, path):
    """A Session from a scenario report (host_tools.scenario.build_report) read from `path`."""
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
                      for f in report.get("faults_injected", [])])
    except (KeyError, TypeError, ValueError) as e:
        raise PlotError("%s: an ill-formed report (%s: %s)" % (path, type(e).__name__, e)) from e


def from_lines(text, path):
    """A Session from the device's serial output read from `path`: one JSON object per line.
    Replies ({"ok": ...}) and what is not a JSON object (a traceback, a banner) are skipped."""
    lines = parse_lines(text)[0]
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
            if obj["ev"] in MEASURED_EVENTS:
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
                   final_state=final_state)


def _measured(t_s, state, power_w, temp_c, delivered_j):
    """One row of what the firmware reported, as numbers (temp_c None: no reading)."""
    return float(t_s), str(state), float(power_w), _float(temp_c), float(delivered_j)


def _float(value):
    return None if value is None else float(value)


def load(path):
    """A Session from a report (one JSON document) or a trace (JSON lines: a .jsonl file, or any
    file that is not one JSON document)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PlotError("%s: cannot read it (%s)" % (path, e.strerror or e)) from e
    except UnicodeDecodeError as e:
        raise PlotError("%s: not a text file (%s)" % (path, e)) from e
    try:
        document = None if Path(path).suffix.lower() == ".jsonl" else json.loads(text)
    except ValueError as e:
        if not any(parse_lines(text)[:2]):  # no JSON lines either: say what is wrong
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


def draw(session, title=None):
    """The Figure of a Session. Each thing drawn has a gid ("optical_w", "power_w", "heatsink_c",
    "temp_c", "delivered_j", "target_j", "fault", "injected", "state:NAME", "summary") by which
    a test finds it."""
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    ax_power, ax_temp, ax_dose = axes = fig.subplots(3, 1, sharex=True)
    fig.subplots_adjust(left=0.07, right=0.81, top=0.88, bottom=0.07, hspace=0.12)
    title = title or session.description or session.name
    fig.suptitle("\n".join(textwrap.wrap(title, 110, break_on_hyphens=False)), fontsize=13,
                 y=0.985)
    fig.text(0.5, 0.905, summary(session), ha="center", fontsize=9.5, gid="summary")

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
    # The faults need no legend: each line or marker has its name next to it.
    handles = [Patch(color=colour, alpha=0.6, label=state) for state, colour in colours.items()]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.82, 0.07), fontsize=8.5,
               title="states", frameon=False)
    return fig


def _mark_states_and_faults(ax, session, colours, named):
    """The states as background bands, reported faults as lines, injected ones as markers on
    the panel's top edge (`named`: with their names); the legend of the panel's series."""
    ends = [t for t, _ in session.states[1:]] + [session.end_s]
    for (start_s, state), end_s in zip(session.states, ends, strict=True):
        ax.axvspan(start_s, end_s, color=colours[state], alpha=0.35, lw=0, zorder=0,
                   gid="state:" + state)
    edge = ax.get_xaxis_transform()  # x in seconds, y from 0 (bottom) to 1 (top)
    for t, code in session.faults:
        ax.axvline(t, color=FAULT_COLOUR, lw=1.2, zorder=3, gid="fault")
        if named:
            ax.text(t, 0.97, code, transform=edge, rotation=90, ha="right", va="top",
                    fontsize=8, color=FAULT_COLOUR)
    for t, fault in session.injected:
        ax.plot(t, 1.0, marker="v", color=INJECTED_COLOUR, ms=9, clip_on=False, zorder=4,
                transform=edge, gid="injected")
        if named:  # above the panel, clear of the power curve
            ax.text(t, 1.04, "injected: " + fault, transform=edge, ha="center", va="bottom",
                    fontsize=8, color=INJECTED_COLOUR)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)


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
        write_png(draw(load(args.report), args.title), args.out)
    except PlotError as e:
        print("laserctl plot: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("laserctl plot: cannot write %s (%s)" % (args.out, e.strerror or e), file=sys.stderr)
        return 2
    print("wrote %s" % args.out)
    return 0

"""The abstraction of the exhaustive search: the phase-1 abstract state (abstract()) and what the
merge key leaves out or keys in a canonical form (KEY_LEAVES_OUT, HISTORY, thermal_key), with
why each is sound: docs/search.md, "The search" and "What merging means"."""

import functools

from controller import EMITTING, PAUSED, READY, STATE_NAMES
from thermal import _SMOOTH_SHIFT, NORMAL
from ticks import ticks_diff

from search.alphabet import reading_of

# What the merge key leaves out, as (class, attribute): docs/search.md, "What merging means",
# reductions 3 and 4.
KEY_LEAVES_OUT = {
    # dead records: rewritten every tick before anything reads them, or only logged
    ("App", "inputs"), ("App", "outputs"), ("Rig", "lines"), ("Rig", "last_status"),
    ("FakeHardware", "enable"), ("FakeHardware", "duty_u16"), ("FakeHardware", "led"),
    ("FakeHardware", "buzzer"),
    # report-only: counted or copied for the event lines, never read by a decision
    ("Controller", "refusals"), ("Controller", "refusal"), ("Controller", "sessions_ended"),
    ("Controller", "session_end"), ("Recorder", "_refusals"), ("Recorder", "_sessions"),
    ("Recorder", "_thermal_level"), ("Recorder", "_last_status_ms"),
    ("FakeHardware", "safe_off_calls"), ("FakeHardware", "watchdog_feeds"),
    ("Dosimeter", "emitting_ms"),
    # the seconds since boot: read only by the serial protocol (how often the clock may be set)
    # and the journal's records, and the search's Rig has neither
    ("App", "uptime_s"),
    # the session's figures for the journal and RTC memory (session.py): written, never read by
    # a decision; RTC memory is read back only by the next boot
    ("Session", "boot"), ("Session", "arm_n"), ("Session", "start_utc_s"),
    ("Session", "checkpoint_due_ms"), ("Session", "stall_mj"), ("Session", "target_mj"),
    ("Session", "peak_uw"), ("Session", "pauses"), ("Session", "derated_ms"),
    ("Session", "measured_mj"), ("Session", "_measured_rest_uj"), ("Session", "_state"),
    ("Session", "measured_last_mj"),
    ("Session", "_at_ms"), ("Session", "_flags"), ("Session", "recalled"),
    ("FakeHardware", "rtc_memory"), ("FakeHardware", "rtc_kept"), ("FakeHardware", "rtc_writes"),
    # the oracle's copies of those counters: only their change in a tick is read
    ("Oracle", "sessions"), ("Oracle", "safe_offs"),
    # keyed in a canonical form instead (thermal_key)
    ("ThermalMonitor", "_temp_ring"), ("ThermalMonitor", "_heat_ring"),
    ("ThermalMonitor", "_seconds"), ("ThermalMonitor", "_smooth_mc"),
}
# Dead records, neither saved nor keyed (Snapshots): the per-tick Inputs and Outputs, rewritten
# every tick before anything reads them, and the Rig's event log (and every "scratch" buffer).
DEAD = {("App", "inputs"), ("App", "outputs"), ("Rig", "lines")}
# The thermal monitor's evidence over time: its one-second clock and heat, and its stuck-reading
# tracking (today's names and those of issue 14's fix). The inputs' search leaves it out of the
# key; the monitors' search keys it (docs/search.md).
HISTORY = {("ThermalMonitor", name) for name in (
    "_next_second_ms", "_heat_uw", "_emitting_seconds", "_emitting", "_stuck_since_ms",
    "_stuck_low", "_stuck_high", "_last_ms", "_stuck_uv", "_stuck_ms")}


@functools.cache
def _decay(ticks):
    """What is left of a difference from the smoothed temperature after `ticks` ticks."""
    return (1 - 2.0 ** -_SMOOTH_SHIFT) ** ticks


def thermal_key(monitor, snaps):
    """What the merge key holds of the thermal monitor beyond its plain attributes:

    - the smoothed temperature, as "cool" where its value cannot show within the search's horizon:
      while the level is NORMAL and the smoothing cannot reach warning_c even if every reading
      were the hottest valid one of the alphabet (it then gives NORMAL and all of the power
      throughout), or outside a session (READY, EMITTING, PAUSED) with a horizon shorter than
      the emission delay (no power is taken from the derate step before a session's delay is
      over; the level meanwhile sets only the alarm's priority, and the buzzer is not checked);
      else exactly;
    - in the monitors' search, the one-second rings as its checks read them: from the oldest
      reading to the newest, and how many readings there are up to the rings' size (the checks
      index the rings only relative to the newest slot, `_seconds % size`, and compare the count
      only with windows smaller than the size)."""
    smooth = monitor._smooth_mc
    c, ticks = snaps.root.app.controller, snaps.horizon
    if c.state not in (READY, EMITTING, PAUSED) and \
            ticks * snaps.period_ms < c.emission_delay_ms:
        smooth = "cool"
    elif monitor.level == NORMAL:
        hottest = snaps.hottest_mc
        # Each tick moves the average 1/2**_SMOOTH_SHIFT of the way, rounded up by < 1 mC.
        reach = hottest - (hottest - smooth) * _decay(ticks) + ticks
        if max(smooth, min(reach, hottest + (1 << _SMOOTH_SHIFT))) < monitor.warning_mc:
            smooth = "cool"
    if not snaps.monitors:
        return smooth
    temps, heats, count = monitor._temp_ring, monitor._heat_ring, monitor._seconds
    size = len(temps)
    first = count % size
    order = [(first + i) % size for i in range(size)]
    return (smooth, min(count, size), tuple(temps[i] for i in order),
            tuple(heats[i] for i in order))


# Objects keyed with a canonical form of some of their attributes (left out above) appended.
KEY_CANONICAL = {"ThermalMonitor": thermal_key}


def abstract(rig, world):
    """The phase-1 abstraction of the current state (docs/search.md, "The search")."""
    c, lv = rig.app.controller, rig.hw.levels
    state = STATE_NAMES[c.state]
    ready = None
    if state == "READY":
        since = ticks_diff(rig.now_ms, getattr(c, "entered_ms", rig.now_ms))
        ready = (since >= getattr(c, "emission_delay_ms", 0), getattr(c, "_seen_released", None))
    return (state, c.fault_code, getattr(rig.app.supervisor, "trip", None),
            getattr(c.thermal, "_have_reading", None),
            lv["key_on"], lv["interlock_closed"], lv["estop_pressed"],
            lv["footswitch_no_closed"], lv["footswitch_nc_closed"],
            world.reading_name.get(reading_of(rig.hw)), ready)

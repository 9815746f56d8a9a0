# The record step: one JSON object per line on the serial port, for the host console, the
# scenario runner and a technician with a terminal. Events when something changes, a status line
# every status period; nothing is written (or allocated) on a quiet tick. Every line is ASCII JSON
# (link.dumps): a reason or an error may hold text from a file on the flash, or an exception's.
# Lines go into the serial port's Outbox (link.py): events into its own queue, which goes first;
# status lines are routine, dropped whole (and counted) when the port is behind.
from alarms import PRIORITY_NAMES
from controller import STATE_NAMES
from link import dumps
from thermal import DERATE_STEPS, LEVEL_NAMES
from ticks import ticks_diff


class Recorder:
    def __init__(self, status_period_ms, treatment, outbox):
        self.status_period_ms = status_period_ms
        self.outbox = outbox
        # Bound once: binding a method allocates, and record() runs every tick.
        self._event, self._line, self._once = outbox.event, outbox.line, outbox.event_once
        self.target_j = treatment.target_j if treatment else None
        self._state = -1
        self._fault_due = None  # the fault code whose line is still to be written
        self._refusals = 0
        self._sessions = 0
        self._thermal_level = 0
        self._vetoing = False
        self._last_status_ms = None

    def record(self, now_ms, app):
        # Each change is marked reported only once its line is queued: a line that finds the
        # event queue full (or the heap) is written by the next tick that has the room.
        c = app.controller
        event = self._event
        # A state's fault line follows it; the next state waits until it is queued.
        if self._fault_due is None and c.state != self._state and \
                self._emit("state", now_ms, app, event):
            self._state = c.state
            self._fault_due = c.fault_code
        if self._fault_due is not None and \
                event(dumps({"ev": "fault", "t_ms": now_ms, "code": self._fault_due})):
            self._fault_due = None
        if c.refusals != self._refusals and \
                event(dumps({"ev": "refused", "t_ms": now_ms, "reason": c.refusal})):
            self._refusals = c.refusals
        if c.sessions_ended != self._sessions and \
                event(dumps({"ev": "session", "t_ms": now_ms, "end": c.session_end,
                             "delivered_j": app.dosimeter.energy_mj / 1000,
                             "delivered_max_j": app.dosimeter.energy_mj / 1000,
                             "target_j": self.target_j,
                             "emitting_ms": app.dosimeter.emitting_ms})):
            self._sessions = c.sessions_ended
        vetoing = app.requested and not app.supervisor.permitted
        if vetoing and not self._vetoing:  # the state machine asked, the supervisor refused
            vetoing = event(dumps({"ev": "veto", "t_ms": now_ms, "state": STATE_NAMES[c.state],
                                   "why": app.supervisor.why}))
        self._vetoing = vetoing
        thermal = c.thermal
        if thermal.level != self._thermal_level and \
                event(dumps({"ev": "thermal", "t_ms": now_ms,
                             "level": LEVEL_NAMES[thermal.level], "temp_c": c.temp_c,
                             "derate_pct": thermal.derate_step * 100 // DERATE_STEPS})):
            self._thermal_level = thermal.level
        last = self._last_status_ms
        if last is None or ticks_diff(now_ms, last) >= self.status_period_ms:
            self._emit("status", now_ms, app, self._line)  # dropped and counted if no room
            self._last_status_ms = now_ms

    def status_written(self, now_ms):
        """Whether this tick (at `now_ms`) wrote a status line: the panel leaves such a tick."""
        return self._last_status_ms == now_ms

    def self_test(self, now_ms, problem):
        self._once(dumps({"ev": "selftest", "t_ms": now_ms, "ok": problem is None,
                          "problem": problem}))

    def interrupted(self, now_ms, record, emitting_ms):
        """The session a reset interrupted, closed at boot (logbook.py) with its dose's bound."""
        self._once(dumps({"ev": "session", "t_ms": now_ms, "end": record["end"],
                          "delivered_j": record["delivered_j"],
                          "delivered_max_j": record["delivered_max_j"],
                          "target_j": record["target_j"],
                          "emitting_ms": emitting_ms,
                          "dose_from": record["dose_from"]}))

    def error(self, now_ms, exc):
        self._once(dumps({"ev": "error", "t_ms": now_ms, "error": "%s: %s"
                          % (type(exc).__name__, exc)}))

    def error_text(self, where, error):
        self._once(dumps({"ev": "error", "where": where, "error": error}))

    def halt(self, now_ms, app):
        self._emit("halt", now_ms, app, self._once)

    def _emit(self, ev, now_ms, app, put):
        fields = self.status_fields(app)
        fields["ev"] = ev
        fields["t_ms"] = now_ms
        return put(dumps(fields))

    def status_fields(self, app):
        """What a status line reports (also the serial status command's reply)."""
        c = app.controller
        return {
            "state": STATE_NAMES[c.state],
            "power_w": c.power_uw // 1000 / 1000,  # to the milliwatt
            "delivered_j": app.dosimeter.energy_mj / 1000, "target_j": self.target_j,
            "emitting_ms": app.dosimeter.emitting_ms,
            "temp_c": None if c.temp_c is None else round(c.temp_c, 2),
            "thermal": LEVEL_NAMES[c.thermal.level],
            "derate_pct": c.thermal.derate_step * 100 // DERATE_STEPS,
            "fault": c.fault_code, "alarm": PRIORITY_NAMES[c.alarm], "silenced": c.silenced,
            "request": app.requested, "permit": app.supervisor.permitted,
            # Without settings only a service calibration point may arm: locked, for everyone else.
            "why": app.supervisor.why, "locked": c.locked or c.calibration_only,
            "blocked": c.blocked,
            "overruns": app.overruns,
            "serial_dropped": self.outbox.dropped,  # lines the port had no room for, since boot
        }

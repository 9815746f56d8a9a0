# The record step: one JSON object per line on the serial port, for the host console, the
# scenario runner and a technician with a terminal. Events when something changes, a status line
# every status period; nothing is printed (or allocated) on a quiet tick. Every line is ASCII JSON
# (link.dumps): a reason or an error may hold text from a file on the flash, or an exception's.
from alarms import PRIORITY_NAMES
from controller import STATE_NAMES
from link import dumps
from thermal import DERATE_STEPS, LEVEL_NAMES
from ticks import ticks_diff


class Recorder:
    def __init__(self, status_period_ms, treatment, write=print):
        self.status_period_ms = status_period_ms
        self._write = write
        self.target_j = treatment.target_j if treatment else None
        self._state = -1
        self._refusals = 0
        self._sessions = 0
        self._thermal_level = 0
        self._vetoing = False
        self._last_status_ms = None

    def record(self, now_ms, app):
        # Each change is marked reported only once its line is written: a line lost to a full
        # heap is written by the next tick that has the memory.
        c = app.controller
        if c.state != self._state:
            self._emit("state", now_ms, app)
            if c.fault_code is not None:
                self._write(dumps({"ev": "fault", "t_ms": now_ms, "code": c.fault_code}))
            self._state = c.state
        if c.refusals != self._refusals:
            self._write(dumps({"ev": "refused", "t_ms": now_ms, "reason": c.refusal}))
            self._refusals = c.refusals
        if c.sessions_ended != self._sessions:
            self._write(dumps({"ev": "session", "t_ms": now_ms, "end": c.session_end,
                               "delivered_j": app.dosimeter.energy_mj / 1000,
                               "target_j": self.target_j,
                               "emitting_ms": app.dosimeter.emitting_ms}))
            self._sessions = c.sessions_ended
        vetoing = app.requested and not app.supervisor.permitted
        if vetoing and not self._vetoing:  # the state machine asked, the supervisor refused
            self._write(dumps({"ev": "veto", "t_ms": now_ms, "state": STATE_NAMES[c.state],
                               "why": app.supervisor.why}))
        self._vetoing = vetoing
        thermal = c.thermal
        if thermal.level != self._thermal_level:
            self._write(dumps({"ev": "thermal", "t_ms": now_ms,
                               "level": LEVEL_NAMES[thermal.level], "temp_c": c.temp_c,
                               "derate_pct": thermal.derate_step * 100 // DERATE_STEPS}))
            self._thermal_level = thermal.level
        last = self._last_status_ms
        if last is None or ticks_diff(now_ms, last) >= self.status_period_ms:
            self._emit("status", now_ms, app)
            self._last_status_ms = now_ms

    def self_test(self, now_ms, problem):
        self._write(dumps({"ev": "selftest", "t_ms": now_ms, "ok": problem is None,
                           "problem": problem}))

    def error(self, now_ms, exc):
        self._write(dumps({"ev": "error", "t_ms": now_ms, "error": "%s: %s"
                           % (type(exc).__name__, exc)}))

    def error_text(self, where, error):
        self._write(dumps({"ev": "error", "where": where, "error": error}))

    def halt(self, now_ms, app):
        self._emit("halt", now_ms, app)

    def _emit(self, ev, now_ms, app):
        fields = self.status_fields(app)
        fields["ev"] = ev
        fields["t_ms"] = now_ms
        self._write(dumps(fields))

    def status_fields(self, app):
        """What a status line reports (also the serial status command's reply)."""
        c = app.controller
        return {
            "state": STATE_NAMES[c.state],
            "power_w": c.power_uw / 1e6,
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
        }

# What the treatment journal (journal.py) records, taken from what the loop did: every session
# from arming to its end (protocol, skin type, prescribed and delivered energy, emitting time,
# pauses, the fault that ended it), every fault, every boot with its cause. A session that a
# reset or a power cut interrupted is closed at the next boot, saying the dose was not recorded.
#
# Flash writes happen only when something changes (arming, a pause, a session's end, a fault),
# never on a quiet tick, and after the tick's outputs are applied.
from controller import BOOT, EMITTING, FAULT, PAUSED, READY, STANDBY, STATE_NAMES

JOURNAL_FULL = "journal full: export it and release it (service)"


class Logbook:
    """Construct it first, give `on_record` to journal.Journal (its boot scan), then `attach` the
    journal. `pin_failures`: wrong service PINs in a row on record; `open_session`: the arm
    record of a session that never ended (the device restarted during it)."""

    def __init__(self):
        self.journal = None
        self.pin_failures = 0
        self.open_session = None
        self.boots = 0
        self._state = BOOT
        self._sessions = 0
        self._pauses = 0
        self._arm_n = None

    def on_record(self, body):
        ev = body.get("ev")
        if ev == "arm":
            self.open_session = body
        elif ev == "session":
            self.open_session = None
        elif ev == "pin_wrong":
            self.pin_failures += 1
        elif ev == "service_open":
            self.pin_failures = 0
        elif ev == "boot":
            self.boots += 1

    def attach(self, journal):
        self.journal = journal

    def boot(self, app, reset, notes):
        """Record the boot: first the end of a session left open, then the boot itself with the
        reset's cause and what the checks found (`notes`: {name: text} of the non-empty ones)."""
        open_session = self.open_session
        if open_session is not None:
            self.append(app, {
                "ev": "session", "end": reset, "arm_n": open_session.get("n"),
                "protocol": open_session.get("protocol"),
                "skin_type": open_session.get("skin_type"),
                "target_j": open_session.get("target_j"), "delivered_j": None,
                "note": "the device restarted during the session: the dose it delivered was "
                        "not recorded (at most the target; the supervisor's budget held)"})
            self.open_session = None
        record = {"ev": "boot", "device": app.device_id, "version": app.version,
                  "image": app.image, "manifest": app.manifest_id, "reset": reset}
        for key in notes:
            record[key] = notes[key]
        self.append(app, record)  # stamped with this boot's number (the boots on record + 1)
        self._state = app.controller.state
        self._sessions = app.controller.sessions_ended

    def record(self, app):
        """Each tick, after the outputs: journal what changed."""
        c = app.controller
        state = c.state
        if state != self._state:
            was, self._state = self._state, state
            if state == PAUSED and was == EMITTING:
                self._pauses += 1
            elif state == READY and was == STANDBY:
                self._pauses = 0
                self._arm_n = self.append(app, self._session_fields(app, {"ev": "arm"}))
            if state == FAULT:
                self.append(app, {"ev": "fault", "code": c.fault_code,
                                   "state": STATE_NAMES[was]})
        if c.sessions_ended != self._sessions:
            self._sessions = c.sessions_ended
            self.append(app, self._session_fields(app, {
                "ev": "session", "end": c.session_end, "arm_n": self._arm_n,
                "delivered_j": app.dosimeter.energy_mj / 1000,
                "emitting_s": app.dosimeter.emitting_ms / 1000, "pauses": self._pauses,
                "fault": c.fault_code if c.state == FAULT else None}))

    def check_space(self, app):
        """Refuse new sessions while the journal could not record them."""
        journal = self.journal
        if journal is not None and journal.full:
            app.controller.blocked = JOURNAL_FULL
        elif app.controller.blocked == JOURNAL_FULL:
            app.controller.blocked = None

    @staticmethod
    def _session_fields(app, record):
        selection = app.selection or {}
        record["protocol"] = selection.get("protocol", "custom")
        record["skin_type"] = selection.get("skin_type")
        treatment = app.treatment
        if treatment is not None:
            record["target_j"] = treatment.target_j
            record["power_w"] = treatment.power_w
        return record

    def append(self, app, record):
        """Append `record`, stamped with when: `utc_s` (the wall clock, seconds since 1970-01-01
        UTC; null while the device does not know it: never guessed), `boot` (this boot's number)
        and `up_s` (whole seconds since it). Returns its number. A journal that cannot be written
        stops new sessions (never a running one: its light is the state machine's and the
        supervisor's)."""
        if self.journal is None:
            return None
        record["utc_s"] = app.hw.wall_clock_s()
        record["boot"] = self.boots + 1
        record["up_s"] = app.uptime_s
        try:
            n = self.journal.append(record)
        except OSError as e:
            app.controller.blocked = "journal cannot be written (%s): service needed" % e
            app.recorder.error_text("journal", "cannot append a %s record: %s"
                                    % (record.get("ev"), e))
            return None
        self.check_space(app)
        return n

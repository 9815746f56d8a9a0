# What the treatment journal (journal.py) records, taken from what the loop did: every session
# from arming to its end (the treatment, the dose delivered and its bound, emitting time, pauses,
# time derated, the fault that ended it), every fault, every boot with its cause. A session that a
# reset or a power cut interrupted is closed at the next boot with what is known of its dose: the
# figures RTC memory kept through a reset (session.py), else the journal's last checkpoint of it.
#
# Flash writes happen only when something changes (arming, a pause, a session's end, a fault), and
# while emitting every checkpoint_s of emission; never on a quiet tick, always after the tick's
# outputs are applied.
from controller import BOOT, EMITTING, FAULT, PAUSED, READY, STANDBY, STATE_NAMES
from fields import is_whole
from flash import read_bytes, write_atomic
from thermal import DERATE_STEPS

JOURNAL_FULL = "journal full: export it and release it (service)"
BOOT_COUNT = "boot_count"  # the last boot's number: boot numbers never repeat, whatever the journal
# What an arm record says of the treatment, and a session record after it.
_TREATMENT_FIELDS = ("protocol", "skin_type", "target_j", "power_w", "peak_w", "dose_j_cm2",
                     "area_cm2", "mode", "pulse_hz", "duty_pct")
# Where an interrupted session's dose came from (its record's dose_from), for its note.
_SOURCES = {
    "rtc_memory": "counted to the last tick in RTC memory, which the reset kept; the light may "
                  "have been on after it until the watchdog reset the chip",
    "checkpoint": "RTC memory was lost (a power cut) or not to be trusted: from the journal's "
                  "last checkpoint of it, and what could follow it before the next was due",
    "none": "RTC memory was lost (a power cut) or not to be trusted, before the session's first "
            "checkpoint: from 0 J, and what could follow before the first was due",
}
CHECKPOINT_S = 30  # journal.checkpoint_s where the board does not set it (docs/memory.md)
_MAX_BOOT = 1 << 29
_CHECKPOINT_RETRY_MS = 1000  # emission after a checkpoint the journal could not take: try again


class Logbook:
    """Construct it on the flash and the board, give `on_record` to journal.Journal (its boot
    scan), then `attach` the journal. `pin_failures`: wrong service PINs in a row on record;
    `open_session`: the arm record of a session that never ended (the device restarted during
    it), and `checkpoint`: its latest checkpoint."""

    def __init__(self, flash, board):
        self.flash = flash
        self.board = board  # journal.checkpoint_s; the watchdog's and the loop's periods
        self.journal = None
        self.pin_failures = 0
        self.open_session = None
        self.checkpoint = None
        self.last_session = None  # the latest session record the scan found (until boot())
        self.boots = 0  # the highest boot number on record
        self._state = BOOT
        self._sessions = 0

    def on_record(self, body):
        ev = body.get("ev")
        boot = body.get("boot")
        if is_whole(boot) and self.boots < boot < _MAX_BOOT:
            self.boots = boot
        if ev == "arm":
            self.open_session, self.checkpoint = body, None
        elif ev == "checkpoint":
            if self.open_session is not None and body.get("arm_n") == self.open_session.get("n"):
                self.checkpoint = body
        elif ev == "session":
            self.open_session = self.checkpoint = None
            self.last_session = body
        elif ev == "boot" and boot is None:
            self.boots += 1  # written before records were stamped with their boot
        elif ev == "pin_wrong":
            self.pin_failures += 1
        elif ev == "service_open":
            self.pin_failures = 0

    def attach(self, journal):
        self.journal = journal

    def boot(self, app, reset, notes, now_ms):
        """Record the boot: number it (one more than any boot on record, in the journal or in
        BOOT_COUNT), close a session left open, then the boot record itself with the reset's
        cause and what the checks found (`notes`: {name: text} of the non-empty ones)."""
        counted = read_bytes(self.flash, BOOT_COUNT)
        try:
            counted = int(counted)
        except (TypeError, ValueError):
            counted = 0  # none yet, or damaged: the journal's numbers stand
        if 0 < counted < _MAX_BOOT:  # past it, damage: a big integer would allocate every tick
            self.boots = max(self.boots, counted)
        try:
            write_atomic(self.flash, BOOT_COUNT, b"%d" % (self.boots + 1))
        except OSError as e:
            notes["boot_count"] = "cannot be written: %s" % e
        kept, app.session.recalled = app.session.recalled, None
        self._close_interrupted(app, reset, kept, now_ms)
        # What the scan found is used up: not kept through the loop (a session record is a dict
        # of some 25 fields on the chip's heap).
        self.open_session = self.checkpoint = self.last_session = None
        if kept is not None:
            app.session.forget()  # its end is on record now
        record = {"ev": "boot", "version": app.version, "image": app.image,
                  "manifest": app.manifest_id, "reset": reset}
        for key in notes:
            record[key] = notes[key]
        self.append(app, record)  # stamped with this boot's number
        self._state = app.controller.state
        self._sessions = app.controller.sessions_ended

    def _close_interrupted(self, app, reset, kept, now_ms):
        """The session the reset interrupted, closed with the dose known of it: the figures RTC
        memory kept to the last tick (and the light a hang let through until the watchdog reset
        the chip), else its latest checkpoint (and at most checkpoint_s more emission, never past
        the target). The dosimeter starts from it: status reports it until the next arm."""
        arm = self.open_session
        if kept is not None and (kept["arm_n"] != (arm or {}).get("n", 0) or self._closed(kept)):
            kept = None  # another session's, or this one's whose end is on record already
        if arm is None and kept is None:
            return
        record = {"ev": "session", "end": reset, "arm_n": None if arm is None else arm.get("n"),
                  "start_utc_s": None if arm is None else arm.get("utc_s")}
        for key in _TREATMENT_FIELDS:
            record[key] = None if arm is None else arm.get(key)
        panel = self.board.get("panel")
        if panel is not None and panel["eyewear"]:  # as its arm record says (None: none found)
            record["eyewear"] = None if arm is None else arm.get("eyewear")
        monitored = app.controller.power_monitor is not None
        watchdog_ms = self.board["timing"]["watchdog_ms"]
        # The light nobody counted ends when the chip resets: a hung loop keeps the outputs of
        # the last tick until the watchdog bites, at most watchdog_ms after its last feed, which
        # itself came less than watchdog_ms after the outputs the count reached (the rest of that
        # tick: a checkpoint's write, a collection). In any state of a session: the next tick
        # may have turned the light on (READY's delay over, a press in PAUSED) before it hung.
        hung_ms = 2 * watchdog_ms + self.board["loop_ms"]
        if kept is not None:
            peak_uw, target_mj = kept["peak_uw"], kept["target_mj"]
            low_mj, emitting_ms = kept["energy_mj"], kept["emitting_ms"]
            pauses, derated_ms = kept["pauses"], kept["derated_ms"]
            measured_j = kept["measured_mj"] / 1000 if monitored else None
            high_mj = low_mj + peak_uw * hung_ms // 1000000
            source = "rtc_memory"
        else:
            checkpoint = self.checkpoint or {}
            peak_uw = _micro(arm.get("peak_w") or arm.get("power_w"))
            target_mj = _milli(arm.get("target_j"))
            low_mj = _milli(checkpoint.get("delivered_j"))
            emitting_ms = _milli(checkpoint.get("emitting_s"))
            pauses = checkpoint.get("pauses", 0)
            derated_ms = _milli(checkpoint.get("derated_s"))
            measured_j = checkpoint.get("measured_j")
            # After the last checkpoint: emission until the next was due, and that write (under
            # watchdog_ms, or the watchdog resets); the dose stop held, late by at most a slow
            # tick (under watchdog_ms). After a watchdog reset the loop hung: add the hang.
            late_ms = watchdog_ms + (hung_ms if reset == "WATCHDOG_RESET" else 0)
            reach_mj = low_mj + peak_uw * (checkpoint_s(self.board) * 1000 + late_ms) // 1000000
            high_mj = min(reach_mj, max(low_mj, target_mj + peak_uw * late_ms // 1000000))
            source = "checkpoint" if checkpoint else "none"
        record.update({
            "target_j": target_mj / 1000, "delivered_j": low_mj / 1000,
            "delivered_max_j": high_mj / 1000, "measured_j": measured_j,
            "emitting_s": emitting_ms / 1000, "pauses": pauses, "derated_s": derated_ms / 1000,
            "fault": None, "dose_from": source,
            "note": "the device restarted during the session: between %.3f J and %.3f J "
                    "delivered (%s)" % (low_mj / 1000, high_mj / 1000, _SOURCES[source])})
        self._identify(app, record)
        self.append(app, record)
        app.dosimeter.restore(low_mj, emitting_ms)
        app.recorder.interrupted(now_ms, record, emitting_ms)

    def _closed(self, kept):
        """Whether the journal's latest session record is the end of the session RTC memory
        kept, written without an arm record (the journal failed at its arm) before a reset came
        ahead of RTC memory's update: the same figures, to the millisecond and millijoule."""
        last = self.last_session
        return kept["arm_n"] == 0 and last is not None and last.get("arm_n") is None and \
            _milli(last.get("delivered_j")) == kept["energy_mj"] and \
            _milli(last.get("emitting_s")) == kept["emitting_ms"]

    def record(self, app):
        """Each tick, after the outputs: journal what changed."""
        c = app.controller
        state = c.state
        d = app.dosimeter
        session = app.session
        if state != self._state:
            was, self._state = self._state, state
            if state == READY and was == STANDBY:
                session.start_utc_s = app.hw.wall_clock_s()
                n = self.append(app, self._treatment_fields(app, {"ev": "arm"}))
                session.arm_n = n or 0
                session.checkpoint_due_ms = checkpoint_s(self.board) * 1000
                session.stall_mj = \
                    session.peak_uw // 1000 * self.board["timing"]["watchdog_ms"] // 1000
            elif state == PAUSED and was == EMITTING:
                self._checkpoint(app)
            if state == FAULT:
                self.append(app, {"ev": "fault", "code": c.fault_code,
                                   "state": STATE_NAMES[was]})
        elif state == EMITTING and d.emitting_ms >= session.checkpoint_due_ms and \
                session.target_mj - d.energy_mj > session.stall_mj:
            # Not when the dose could be reached during the write: the stop would be late.
            self._checkpoint(app)
        if c.sessions_ended != self._sessions:
            self._sessions = c.sessions_ended
            record = self._treatment_fields(app, {
                "ev": "session", "end": c.session_end, "arm_n": session.arm_n or None,
                "start_utc_s": session.start_utc_s})
            self._dose_fields(app, record)
            record["delivered_max_j"] = record["delivered_j"]
            record["fault"] = c.fault_code if c.state == FAULT else None
            record["dose_from"] = "dosimeter"
            self._identify(app, record)
            self.append(app, record)
            session.ended()  # a session that ends without an arm on record names none

    def _checkpoint(self, app):
        """The running session's dose, for the next boot should the power fail."""
        n = self.append(app, self._dose_fields(app, {"ev": "checkpoint",
                                                     "arm_n": app.session.arm_n or None}))
        # A write that failed is tried again soon: the bound after a power cut counts on it.
        app.session.checkpoint_due_ms = app.dosimeter.emitting_ms + (
            _CHECKPOINT_RETRY_MS if n is None else checkpoint_s(self.board) * 1000)

    @staticmethod
    def _dose_fields(app, record):
        d, session = app.dosimeter, app.session
        record["delivered_j"] = d.energy_mj / 1000
        record["measured_j"] = session.measured_mj / 1000 \
            if app.controller.power_monitor is not None else None
        record["emitting_s"] = d.emitting_ms / 1000
        record["pauses"] = session.pauses
        record["derated_s"] = session.derated_ms / 1000
        return record

    @staticmethod
    def _identify(app, record):
        """Which firmware and calibration delivered it (append names the device)."""
        record["version"] = app.version
        record["image"] = app.image
        values = None if app.settings is None else app.settings.values
        record["calibrated_on"] = None if values is None else values.get("calibrated_on")

    def check_space(self, app):
        """Refuse new sessions while the journal could not record them."""
        journal = self.journal
        if journal is not None and journal.full:
            app.controller.block(JOURNAL_FULL)
        else:
            app.controller.unblock(JOURNAL_FULL)

    @staticmethod
    def _treatment_fields(app, record):
        """The treatment as selected: a preset's name and skin type (custom: none; calibration:
        a service calibration point) and what it prescribes."""
        selection = app.selection or {}
        treatment = app.treatment
        record["protocol"] = selection.get("protocol", "custom")
        record["skin_type"] = selection.get("skin_type")
        record["target_j"] = treatment.target_mj / 1000
        record["power_w"] = treatment.power_w  # as prescribed
        # As calibrated, rounded up to the milliwatt: the bounds after a power cut count on it.
        record["peak_w"] = (treatment.peak_uw_steps[DERATE_STEPS] + 999) // 1000 / 1000
        record["dose_j_cm2"] = treatment.dose_j_cm2
        record["area_cm2"] = treatment.area_cm2
        record["mode"] = treatment.mode
        record["pulse_hz"] = treatment.pulse_hz or None
        record["duty_pct"] = treatment.duty_pct if treatment.mode == "pulsed" else None
        panel = app.board.get("panel")
        if panel is not None and panel["eyewear"]:  # the board asks the operator to confirm it
            record["eyewear"] = app.eyewear_confirmed
        return record

    def stamp(self, app, record):
        """`record` with where and when it is made (see append). Returns it."""
        record["device"] = app.device_id
        record["utc_s"] = app.hw.wall_clock_s()
        record["boot"] = self.boots + 1
        record["up_s"] = app.uptime_s
        return record

    def append(self, app, record):
        """Append `record`, stamped with the device (`device`, its unique id: a record read
        alone still says where it was made) and when: `utc_s` (the wall clock, seconds since
        1970-01-01 UTC; null while the device does not know it: never guessed), `boot` (this
        boot's number) and `up_s` (whole seconds since it). Returns its number. A journal that
        cannot be written stops new sessions (never a running one: its light is the state
        machine's and the supervisor's)."""
        if self.journal is None:
            return None
        self.stamp(app, record)
        try:
            n = self.journal.append(record)
        except OSError as e:
            app.controller.block("journal cannot be written (%s): service needed" % e)
            app.recorder.error_text("journal", "cannot append a %s record: %s"
                                    % (record.get("ev"), e))
            return None
        self.check_space(app)
        return n


def checkpoint_s(board):
    """The board's journal.checkpoint_s: how often the journal records a running session's dose
    while it emits (it does at every pause too). After a power cut the dose is known to within
    this much emission; docs/memory.md weighs it against the journal's room and the flash's wear.
    (Here, not in board.py, whose checks the loop does not keep imported: app.py.)"""
    return board.get("journal", {}).get("checkpoint_s", CHECKPOINT_S)


def _milli(value):
    """A journal's figure (J, s) in whole thousandths; 0 for none."""
    return int((value or 0) * 1000 + 0.5)


def _micro(value):
    return int((value or 0) * 1000000 + 0.5)

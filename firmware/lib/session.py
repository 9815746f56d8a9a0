# The running session's figures, from arming to its end: the dose and emitting time (the
# dosimeter's), its pauses, the time it emitted derated, and the light a power monitor measured.
# Every tick of a session they are written to the ESP32's RTC memory (through hw.py's buffer), in
# place and allocating nothing. RTC memory survives a soft or a watchdog reset: the next boot
# closes the interrupted session with them (logbook.py). A power cut loses it; the journal's
# checkpoints bound the dose then.
import struct

from controller import EMITTING, PAUSED, READY, STANDBY
from thermal import DERATE_STEPS
from ticks import ticks_diff

# In RTC memory from hw.RTC_MEMORY_FREE (its first bytes are the clock's): little-endian u32s,
# every value below 2**30 (the chip's small integers: packing one allocates nothing).
_FORMAT = "<11I"
_FIELDS = ("magic", "check", "arm_n", "state", "energy_mj", "emitting_ms", "pauses",
           "derated_ms", "measured_mj", "target_mj", "peak_uw")
_MAGIC = 0x2D05E551  # "a session is kept here"; 0 once it ended
_RUNNING = (READY, EMITTING, PAUSED)


# Session._flags: what the last tick did, and whether RTC memory holds this session.
_DERATED = 1  # it emitted derated
_MEASURED = 2  # it emitted, under a power monitor
_KEPT = 4


class Session:
    """Construct it at boot with the hardware (its `rtc_memory` buffer as the reset left it,
    whose bytes from `rtc_memory_free` on are this module's, and `keep_rtc_memory()`); call
    update() each tick before the journal's record and keep() after it. The figures are those
    of the session running (the dose is the dosimeter's). (Few attributes: an
    object's attribute table is one more allocation that stays, and a larger one, where it
    lands, splits the chip's heap.)"""

    def __init__(self, hw):
        self._hw = hw
        # The journal's (logbook.py): its arm record's number (0: none), when it began by the
        # wall clock, the emitting time at which its next checkpoint is due, and the dose within
        # which no checkpoint is written.
        self.arm_n = 0
        self.start_utc_s = None
        self.checkpoint_due_ms = 0
        self.stall_mj = 0
        self.target_mj = 0
        self.peak_uw = 0  # the light while the enable line is high, at full power
        self.pauses = 0
        self.derated_ms = 0
        self.measured_mj = 0
        self._measured_rest_uj = 0
        self.measured_last_mj = 0  # the last session's measured dose, once it ended
        self._state = STANDBY
        self._at_ms = None
        self._flags = 0
        # What RTC memory held when the device started (before any tick): a session a reset
        # interrupted, for the boot to close (logbook.py), or None.
        self.recalled = self._recall()

    def update(self, app, now_ms):
        """Count what the tick that just ended did (after the outputs)."""
        c = app.controller
        state, was = c.state, self._state
        dt_ms = 0 if self._at_ms is None else ticks_diff(now_ms, self._at_ms)
        self._at_ms = now_ms
        if state != was:
            self._state = state
            if state == READY and was == STANDBY:  # armed: a new session
                self._begin(app)
            elif state == PAUSED and was == EMITTING:
                self.pauses += 1
        flags = self._flags
        if dt_ms > 0:
            if flags & _DERATED:
                self.derated_ms += dt_ms
            if flags & _MEASURED:
                # mW x ms = uJ; the rest carried, so that the count does not drift.
                uj = c.power_monitor.measured_mw * dt_ms + self._measured_rest_uj
                self.measured_mj += uj // 1000
                self._measured_rest_uj = uj % 1000
        flags &= _KEPT
        if state == EMITTING:
            if c.thermal.derate_step < DERATE_STEPS:
                flags |= _DERATED
            if c.power_monitor is not None:
                flags |= _MEASURED
        self._flags = flags

    def _begin(self, app):
        self.arm_n = 0  # the journal's, once the arm record is written
        treatment = app.treatment
        self.target_mj = treatment.target_mj
        self.peak_uw = treatment.peak_uw_steps[DERATE_STEPS]
        self.pauses = self.derated_ms = self.measured_mj = self._measured_rest_uj = 0

    def ended(self):
        """Its end is on record: what named it goes, so that a session that starts without
        an arm of its own (a tick that failed as it armed) is never taken for this one."""
        self.arm_n = 0
        self.start_utc_s = None
        self.measured_last_mj = self.measured_mj  # what the panel's COMPLETE screen shows
        self.pauses = self.derated_ms = self.measured_mj = self._measured_rest_uj = 0

    def keep(self, app):
        """Write the running session's figures to RTC memory; once it has ended, mark it ended
        there (the journal recorded its end first)."""
        state = self._state
        if state in _RUNNING:
            d = app.dosimeter
            magic, arm_n = _MAGIC, self.arm_n
            energy_mj, emitting_ms, pauses = d.energy_mj, d.emitting_ms, self.pauses
            derated_ms, measured_mj = self.derated_ms, self.measured_mj
            target_mj, peak_uw = self.target_mj, self.peak_uw
            # XOR keeps every value a small integer; a reset in the middle of the write (a
            # torn record) fails it.
            check = (magic ^ arm_n ^ state ^ energy_mj ^ emitting_ms ^ pauses ^ derated_ms ^
                     measured_mj ^ target_mj ^ peak_uw)
            hw = self._hw
            struct.pack_into(_FORMAT, hw.rtc_memory, hw.rtc_memory_free, magic, check, arm_n,
                             state, energy_mj, emitting_ms, pauses, derated_ms, measured_mj,
                             target_mj, peak_uw)
            hw.keep_rtc_memory()
            self._flags |= _KEPT
        elif self._flags & _KEPT:
            self.forget()

    def forget(self):
        """Mark RTC memory as holding no session (its end is on record)."""
        hw = self._hw
        struct.pack_into("<I", hw.rtc_memory, hw.rtc_memory_free, 0)
        hw.keep_rtc_memory()
        self._flags &= ~_KEPT

    def _recall(self):
        """The session RTC memory holds, as a dict of _FIELDS, or None (none kept, it ended, or
        a reset tore its write). Allocates: for the boot."""
        hw = self._hw
        values = struct.unpack_from(_FORMAT, hw.rtc_memory, hw.rtc_memory_free)
        if values[0] != _MAGIC or values[3] not in _RUNNING:
            return None
        check = 0
        for i, value in enumerate(values):
            if i != 1:
                check ^= value
        if check != values[1]:
            return None
        return {name: values[i] for i, name in enumerate(_FIELDS)}

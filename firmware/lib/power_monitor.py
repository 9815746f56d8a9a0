# The power monitor (an optional board part): a photodiode and amplifier on an ADC1 pin, with its
# own calibration, measuring the light the diode really emits. While emitting, the measured and
# the commanded energy are summed over a window; a window whose measurement is off by more than
# the tolerance latches OUTPUT_POWER_DEVIATION (a degraded diode, a failing driver, a dirty
# window - or a driver giving far more than asked, as measured in commercial devices).
# Integer millivolts and milliwatts: a tick allocates nothing.
from array import array

from ticks import ticks_add, ticks_diff

OUTPUT_POWER_DEVIATION = "OUTPUT_POWER_DEVIATION"


class PowerMonitor:
    """`config` is a board's "power_monitor" section (validated by board.py)."""

    def __init__(self, config, now_ms):
        points = config["calibration"]  # [[uv, watts], ...], both rising
        self._mv = array("i", [p[0] // 1000 for p in points])
        self._mw = array("i", [int(p[1] * 1000 + 0.5) for p in points])
        self.tolerance_pct = config["tolerance_pct"]
        # An absolute floor as well: a photodiode has offset and noise, and between slow pulses
        # nothing is commanded at all (light there, though, is a fault: a driver stuck on).
        self.floor_mw = int(config["floor_w"] * 1000 + 0.5)
        self.window_ms = config["window_ms"]
        self.measured_mw = 0
        self.restart(now_ms)

    def restart(self, now_ms):
        self._window_start_ms = now_ms
        self._measured = 0  # mW summed over the window's ticks
        self._commanded = 0
        self._ticks = 0

    def measured(self, uv):
        """Milliwatts for a reading: piecewise-linear between the calibration points."""
        mv = uv // 1000
        pts_mv, pts_mw = self._mv, self._mw
        last = len(pts_mv) - 1
        i = 1
        while i < last and mv > pts_mv[i]:
            i += 1
        span = pts_mv[i] - pts_mv[i - 1]
        mw = pts_mw[i - 1] + (pts_mw[i] - pts_mw[i - 1]) * (mv - pts_mv[i - 1]) // span
        return mw if mw > 0 else 0

    def update(self, uv, commanded_uw, emitting, now_ms):
        """Compare this tick's reading with the power commanded over the tick that just ended
        (0 between slow pulses). Outside emission the window restarts. Returns a fault or None."""
        self.measured_mw = self.measured(uv)
        if not emitting:
            self.restart(now_ms)
            return None
        self._measured += self.measured_mw
        self._commanded += commanded_uw // 1000
        self._ticks += 1
        if ticks_diff(now_ms, self._window_start_ms) < self.window_ms:
            return None
        measured, commanded, ticks = self._measured, self._commanded, self._ticks
        self._window_start_ms = ticks_add(self._window_start_ms, self.window_ms)
        self._measured = self._commanded = self._ticks = 0
        allowed = self.tolerance_pct * commanded // 100 + self.floor_mw * ticks
        if abs(measured - commanded) > allowed:
            return OUTPUT_POWER_DEVIATION
        return None

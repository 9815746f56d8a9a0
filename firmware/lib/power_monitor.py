# The power monitor (an optional board part): a photodiode and amplifier on an ADC1 pin, with its
# own calibration, measuring the light the diode really emits. While emitting, the measured and
# the commanded energy are summed over a window; a window whose measurement is off by more than
# the tolerance latches OUTPUT_POWER_DEVIATION (a degraded diode, a failing driver, a dirty
# window - or a driver giving far more than asked, as measured in commercial devices).
# Integer millivolts and milliwatts: a tick allocates nothing.
from array import array

OUTPUT_POWER_DEVIATION = "OUTPUT_POWER_DEVIATION"


class PowerMonitor:
    """`config` is a board's "power_monitor" section (validated by board.py); `loop_ms` the
    board's tick. The window counts ticks of emission: a pause keeps its partial sums, and so
    does a new session, so that short presses and short sessions add up to windows too."""

    def __init__(self, config, loop_ms):
        points = config["calibration"]  # [[uv, watts], ...], both rising, >= 1 mV apart
        self._mv = array("i", [p[0] // 1000 for p in points])
        self._mw = array("i", [int(p[1] * 1000 + 0.5) for p in points])
        self.tolerance_permille = int(config["tolerance_pct"] * 10 + 0.5)  # integer in the tick
        # A photodiode has an offset and noise, and between slow pulses nothing is commanded at
        # all: on such ticks an absolute floor applies (light well above it is a fault: a
        # driver stuck on). Where light is commanded, only the relative tolerance does.
        self.floor_mw = int(config["floor_w"] * 1000 + 0.5)
        self.window_ticks = max(1, config["window_ms"] // loop_ms)
        self.measured_mw = 0
        self.restart()

    def restart(self):
        self._measured = 0  # mW summed over the window's ticks
        self._commanded = 0
        self._ticks = 0
        self._idle_ticks = 0  # ticks with no light commanded (between slow pulses)

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

    def update(self, uv, commanded_uw, emitting):
        """Compare this tick's reading with the power commanded over the tick that just ended
        (0 between slow pulses). Returns a fault code or None."""
        self.measured_mw = measured = self.measured(uv)
        if not emitting:
            return None
        commanded = commanded_uw // 1000
        self._measured += measured
        self._commanded += commanded
        self._ticks += 1
        if commanded == 0:
            self._idle_ticks += 1
        if self._ticks < self.window_ticks:
            return None
        allowed = (self.tolerance_permille * self._commanded // 1000
                   + self.floor_mw * self._idle_ticks)
        deviation = abs(self._measured - self._commanded)
        self.restart()
        return OUTPUT_POWER_DEVIATION if deviation > allowed else None

# The diode's calibration curve: PWM duty <-> optical watts, piecewise-linear between the points a
# power meter measured. Duty is aligned to the PWM's real resolution so that the watts the firmware
# counts are the watts of the duty the chip actually produces.

_APB_CLOCK_HZ = 80000000


def pwm_resolution_bits(freq_hz):
    """Duty resolution of the ESP32 LEDC at `freq_hz`: 5 kHz -> 13 bits, 1 kHz -> 16 bits."""
    ticks = _APB_CLOCK_HZ // freq_hz
    bits = 0
    while (2 << bits) <= ticks:
        bits += 1
    return min(bits, 16)


def for_board(board):
    """The calibration of a validated board."""
    diode = board["diode"]
    return Calibration(diode["calibration"], board["laser"]["pwm_freq_hz"], diode["max_power_w"])


class Calibration:
    """`points` is a board's diode.calibration: [[duty_u16, watts], ...], checked by board.py."""

    def __init__(self, points, pwm_freq_hz, max_power_w):
        self.duties = tuple(p[0] for p in points)
        self.watts_at = tuple(float(p[1]) for p in points)
        self.step = 1 << (16 - pwm_resolution_bits(pwm_freq_hz))
        self.max_power_w = max_power_w

    def lowest_lasing_w(self):
        """The lowest non-zero power the power meter measured: below it the curve is a guess."""
        for w in self.watts_at:
            if w > 0:
                return w
        return self.watts_at[-1]

    def watts(self, duty):
        """Optical watts the diode emits at `duty` (0 below the lasing threshold)."""
        d, w = self.duties, self.watts_at
        if duty <= d[0]:
            return w[0]
        for i in range(1, len(d)):
            if duty <= d[i]:
                return w[i - 1] + (w[i] - w[i - 1]) * (duty - d[i - 1]) / (d[i] - d[i - 1])
        return w[-1]

    def duty(self, power_w):
        """The aligned duty that gives `power_w`; ValueError if the board cannot give it.
        Never clamped: above the maximum or below the lowest measured lasing power is refused."""
        lowest = self.lowest_lasing_w()
        if power_w > self.max_power_w:
            raise ValueError("power %.4f W is above this device's maximum of %.3f W "
                             "(diode.max_power_w, or the lower limits.max_power_w the service "
                             "set)" % (power_w, self.max_power_w))
        if power_w < lowest:
            raise ValueError("power %.4f W is below %.3f W, the lowest power this board's "
                             "calibration measured" % (power_w, lowest))
        d, w = self.duties, self.watts_at
        for i in range(1, len(d)):
            if w[i - 1] < power_w <= w[i]:
                exact = d[i - 1] + (d[i] - d[i - 1]) * (power_w - w[i - 1]) / (w[i] - w[i - 1])
                aligned = int(exact / self.step + 0.5) * self.step
                return min(aligned, 65536 - self.step)
        raise ValueError("power %.3f W is not on the calibration curve" % power_w)

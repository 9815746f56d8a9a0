# The second opinion. Each tick it recomputes, from the raw inputs alone, whether emission may be
# on, and vetoes the outputs if not. It never turns anything on, and it shares no state with the
# treatment state machine: a bug there cannot switch this check off.
from array import array

import calibration
from thermal import median
from thermistor import Thermistor


class Supervisor:
    def __init__(self, board):
        therm = Thermistor(board["thermistor"])
        # Compare raw microvolts against the voltage of the shutdown temperature: no floats per
        # tick, and its own median of the samples, not the monitor's.
        self._limit_uv = int(therm.uv_at(board["thermal"]["shutdown_c"]))
        self._scratch = array("i", [0] * board["thermistor"]["samples"])
        self._hot_is_low = therm.ntc_at_bottom
        self._min_uv = therm.min_uv
        self._max_uv = therm.max_uv
        # No duty above the one for the diode's rated power, whatever the state machine asks.
        self._max_duty_u16 = calibration.for_board(board).duty(board["diode"]["max_power_w"])
        self.permitted = False

    def veto(self, inp, out):
        """Clear the emission outputs unless every condition holds; return the verdict."""
        uv = median(inp.thermistor_samples, self._scratch)
        ok = (inp.key_on and inp.interlock_closed and not inp.estop_pressed
              and inp.footswitch_no_closed and not inp.footswitch_nc_closed
              and self._min_uv <= uv <= self._max_uv
              and (uv > self._limit_uv if self._hot_is_low else uv < self._limit_uv)
              and out.pwm_duty_u16 <= self._max_duty_u16)
        if not ok:
            out.laser_enable = False
            out.pwm_duty_u16 = 0
            out.gate_hz = 0
        self.permitted = ok
        return ok

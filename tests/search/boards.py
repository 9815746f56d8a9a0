"""The boards, treatments and sensor readings the safety searches run on."""

import board as board_file
from support import load_board, raw_board


def _quick_board():
    """The sim board with every timing at the low end of what a board file may set (the
    timeouts and the thermal monitors' windows within reach of a search; debounce 0: a press
    acts in its first tick)."""
    data = raw_board()
    data["timing"].update({"emission_delay_ms": 1000, "footswitch_mismatch_ms": 10,
                           "footswitch_debounce_ms": 0, "ready_timeout_ms": 5000,
                           "paused_timeout_ms": 10000, "alarm_silence_ms": 10000})
    data["thermal"].update({"stuck_s": 1, "rise_window_s": 2, "runaway_window_s": 2})
    return board_file.validate(data)


BOARDS = {"sim": load_board(), "quick": _quick_board()}
# CW treatments: (power W, dose J/cm2, area cm2). Short ones so that COMPLETE is reached; a low
# power one whose derated steps fall below the lasing threshold (EMITTING with the gate closed).
# The exhaustive search's is the first: 10 J, one second of emission.
CW_TREATMENTS = ((10.0, 1.0, 10.0), (5.0, 1.0, 10.0), (15.0, 2.0, 20.0), (1.0, 1.0, 3.0),
                 (10.0, 8.0, 100.0))
# What a faulty thermistor's divider reads: open, shorted, or out of the table's range.
SENSOR_FAULT_UV = {"open": 3100000, "short": 0, "range": 2700000}

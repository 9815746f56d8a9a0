"""The exhaustive search's alphabets: what a symbol does to the inputs, tick by tick, and the
world it does it in (the board, the treatment, the readings). docs/search.md describes them."""

from support import Rig
from thermistor import OK

from search.boards import BOARDS, CW_TREATMENTS, SENSOR_FAULT_UV
from search.oracle import Oracle

# The inputs' search: one tick a symbol.
ALPHABET = ("wait", "footswitch_down", "footswitch_up", "key", "interlock", "estop", "arm",
            "reset", "ack", "temp_normal", "temp_high", "temp_invalid")
# The monitors' search: time in long strides (emission goes on for 90 ticks; the pedal goes up for
# 1, 10 or 100 ticks and down again), the monitors' faults, and the buttons that restart
# sessions. The quick board's windows: stuck 1 s, rise and runaway 2 s (100 and 200 ticks).
MONITOR_ALPHABET = ("wait_90", "pause_1", "pause_10", "pause_100", "temp_normal", "temp_stuck",
                    "temp_warm", "arm", "reset")
IDLE = "idle"  # phase 1 only: time passes until the abstract state changes
BUTTONS = {"arm": "arm_pressed", "reset": "reset_pressed", "ack": "ack_pressed"}
TOGGLES = {"key": "key_on", "interlock": "interlock_closed", "estop": "estop_pressed"}
TEMPERATURES = ("temp_normal", "temp_high", "temp_invalid", "temp_stuck", "temp_warm")
NORMAL_C = 25.0
HIGH_ABOVE_SHUTDOWN_C = 5.0
# A dead fan, abstracted: the heatsink 0.9 C warmer than normal. Within the jump (2 C) and rise
# (0.5 C/s over 2 s) limits, but beyond what the runaway check allows a rise over its 2 s window
# with the 10 W treatment's heat (0.45 C + 0.3 C of margin from 25 C, the room up to 35 C).
WARM_ABOVE_NORMAL_C = 0.9
SPREAD_UV = 1000  # FakeHardware's: a live sensor's samples differ within a tick
TREATMENT = CW_TREATMENTS[0]  # 10 W, 1 J/cm2, 10 cm2: 10 J, one second of emission
MONITOR_TREATMENT = (10.0, 3.0, 10.0)  # 30 J: 3 s, longer than the windows


class World:
    """The board, the treatment and the temperature readings of one search. A reading is
    (microvolts, spread of the samples around it): temp_stuck is the normal temperature with
    every sample one value. `monitors`: the monitors' search (its alphabet and treatment, the
    key on from boot, the oracle's warm step)."""

    def __init__(self, board_name, monitors=False):
        self.board_name = board_name
        self.board = BOARDS[board_name]
        self.monitors = monitors
        self.alphabet = MONITOR_ALPHABET if monitors else ALPHABET
        self.treatment = MONITOR_TREATMENT if monitors else TREATMENT
        self.period_ms = self.board["loop_ms"]
        self.timing = self.board["timing"]
        self.readings = self.reading_name = None

    def new_rig(self, start_ms=0):
        """A Rig past boot, in STANDBY (the key on in the monitors' search), with its oracle."""
        power_w, dose, area = self.treatment
        rig = Rig(board=self.board, power_w=power_w, dose_j_cm2=dose, area_cm2=area,
                  temp_c=NORMAL_C, start_ms=start_ms)
        if self.monitors:
            rig.hw.levels["key_on"] = True
            rig.tick()
        quiet(rig)
        # The merge key leaves the uptime out (abstraction.KEY_LEAVES_OUT): only the serial
        # protocol and the journal read it, and this Rig has neither.
        assert rig.app.commands is None and rig.app.logbook is None
        sensor = rig.app.controller.thermal.sensor
        high_c = self.board["thermal"]["shutdown_c"] + HIGH_ABOVE_SHUTDOWN_C
        normal_uv = int(sensor.uv_at(NORMAL_C))
        warm_uv = int(sensor.uv_at(NORMAL_C + WARM_ABOVE_NORMAL_C))
        self.readings = {"temp_normal": (normal_uv, SPREAD_UV),
                         "temp_high": (int(sensor.uv_at(high_c)), SPREAD_UV),
                         "temp_invalid": (SENSOR_FAULT_UV["open"], SPREAD_UV),
                         "temp_stuck": (normal_uv, 0),
                         "temp_warm": (warm_uv, SPREAD_UV)}
        self.reading_name = {r: name for name, r in self.readings.items()}
        self._sensor = sensor
        # The buzzer's pattern is not checked: the merging leaves the alarm's phase out.
        rig.oracle = Oracle(rig, buzzer=False,
                            warm_step=(normal_uv, warm_uv) if self.monitors else None)
        return rig

    def hottest_mc(self):
        """The hottest valid reading the alphabet can make (its temperature symbols')."""
        sensor = self._sensor
        return max(sensor.temp_mc(self.readings[name][0]) for name in self.alphabet
                   if name in self.readings and sensor.check(self.readings[name][0]) == OK)


def reading_of(hw):
    return hw.thermistor_uv, hw.spread_uv


def quiet(rig):
    """The Rig keeps every event line, and counts the serial port's bytes: dropped after each
    tick (a log, not state: a line's length depends on its timestamp)."""
    rig.lines.clear()
    rig.last_status = None
    rig.hw.serial_written = 0


def effect(levels, reading, symbol, world):
    """The input levels and thermistor reading after a one-tick `symbol` (a new dict)."""
    new = dict(levels)
    for name in BUTTONS.values():
        new[name] = False
    if symbol in BUTTONS:
        new[BUTTONS[symbol]] = True
    elif symbol in TOGGLES:
        new[TOGGLES[symbol]] = not levels[TOGGLES[symbol]]
    elif symbol in ("footswitch_down", "footswitch_up"):
        down = symbol == "footswitch_down"
        new["footswitch_no_closed"], new["footswitch_nc_closed"] = down, not down
    elif symbol in TEMPERATURES:
        reading = world.readings[symbol]
    return new, reading


def ticks_of(symbol):
    """How many ticks a symbol lasts: wait_N N, pause_N N + 1, the others 1."""
    if symbol.startswith("wait_"):
        return int(symbol[5:])
    if symbol.startswith("pause_"):
        return int(symbol[6:]) + 1
    return 1


def plan(levels, reading, symbol, world):
    """The inputs of each tick of `symbol`: [(levels, reading), ...]. wait_N: N ticks with the
    inputs unchanged; pause_N: the pedal up for N ticks, then down again."""
    if symbol.startswith("wait_"):
        return [effect(levels, reading, "wait", world)] * ticks_of(symbol)
    if symbol.startswith("pause_"):
        up = effect(levels, reading, "footswitch_up", world)
        down = effect(up[0], reading, "footswitch_down", world)
        return [up] + [effect(up[0], reading, "wait", world)] * (ticks_of(symbol) - 2) + [down]
    return [effect(levels, reading, symbol, world)]

# The two records that cross the hardware boundary once per tick. They are allocated once and
# overwritten in place, so a steady-state tick allocates nothing for them.
from array import array

# A command from the serial port for this tick (Inputs.command): the panel's buttons by another
# way, never more (commands.py). Interned strings: comparing them allocates nothing.
ARM = "arm"  # from STANDBY only: to READY (the footswitch still decides emission)
DISARM = "disarm"  # ends a session in READY, EMITTING or PAUSED
ACK = "ack"
RESET = "reset"


class Inputs:
    """Everything sensed in one tick, already decoded to logical levels by the hardware module."""

    __slots__ = ("t_ms", "key_on", "interlock_closed", "estop_pressed", "footswitch_no_closed",
                 "footswitch_nc_closed", "arm_pressed", "reset_pressed", "ack_pressed",
                 "thermistor_samples", "monitor_uv", "enable_sensed", "enable_edges",
                 "encoder_steps", "select_pressed", "back_pressed", "command")

    def __init__(self, samples=1):
        self.t_ms = 0
        self.key_on = False
        self.interlock_closed = False
        self.estop_pressed = True  # until read, assume the worst
        self.footswitch_no_closed = False
        self.footswitch_nc_closed = True
        self.arm_pressed = False
        self.reset_pressed = False
        self.ack_pressed = False
        self.thermistor_samples = array("i", [0] * samples)  # ADC microvolts, this tick
        self.monitor_uv = 0  # the power monitor's photodiode, where the board has one
        self.enable_sensed = False  # the enable line read back at the driver, where it can be
        self.enable_edges = 0  # its rising edges since the last sense (a hardware counter)
        # The operator panel's encoder (detents turned since the last sense, clockwise > 0) and
        # its two buttons, where the board has a panel (panel.py).
        self.encoder_steps = 0
        self.select_pressed = False
        self.back_pressed = False
        self.command = None  # ARM, DISARM, ACK or RESET from the serial port, for this tick only


class Outputs:
    """Everything the hardware module applies in one tick. The defaults are the safe state."""

    __slots__ = ("laser_enable", "pwm_duty_u16", "gate_hz", "gate_duty_u16", "emission_led",
                 "buzzer")

    def __init__(self):
        self.safe()

    def safe(self):
        self.laser_enable = False
        self.pwm_duty_u16 = 0
        self.gate_hz = 0  # > 0: the enable line is pulsed by a hardware PWM at this rate
        self.gate_duty_u16 = 0
        self.emission_led = False
        self.buzzer = False

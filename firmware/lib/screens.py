# What the operator panel's screens say (panel.py decides which one shows): one row at a time,
# into a textgrid.TextGrid, from the App's figures as they are this tick. Words a clinician
# reads, 16 characters a line; numbers in whole units, rounded where a display would round them
# (the power, the delivered dose) and up where a bound is meant (time left, the warning's count).
from alarms import NONE
from controller import COMPLETE, EMITTING, FAULT, PAUSED, READY, STANDBY
from textgrid import COLS
from thermal import DERATE_STEPS, WARNING
from thermistor import OK
from ticks import ticks_diff

# The panel's own screens in STANDBY (panel.py's navigation); every other state has one screen.
HOME = 0
REGION = 1
CONDITION = 2
SKIN_TYPE = 3
SUMMARY = 4
EYEWEAR = 5
PIN = 6
SERVICE = 7
HOME_ITEMS = (b"Arm", b"New treatment", b"Service")
PIN_ENTER = 10  # the PIN's digit wheel: 0..9, then "enter"
SKIN = (b"I", b"II", b"III", b"IV", b"V", b"VI")  # Fitzpatrick skin types
_PRIORITY = (b"", b"LOW", b"MEDIUM", b"HIGH")  # alarms.PRIORITY_NAMES, as bytes
_EYEWEAR = (b"LASER SAFETY", b"", b"Eyewear on for", b"everyone in the", b"room?", b"",
            b"Push: yes, arm", b"Back: no")

# A fault in plain words: (code, what happened, what to do, what to do). A code not listed shows
# itself.
_FAULT_WORDS = (
    ("ESTOP", b"E-stop pressed", b"Release it, then", b"press reset"),
    ("FOOTSWITCH_FAULT", b"Footswitch fault", b"Check its cable,", b"then press reset"),
    ("OVER_TEMP", b"Heatsink too hot", b"Let it cool,", b"then press reset"),
    ("THERMAL_RATE", b"Heating too fast", b"Check the fan,", b"then press reset"),
    ("THERMAL_RUNAWAY", b"Cooling failed", b"Check the fan,", b"then press reset"),
    ("OUTPUT_POWER_DEVIATION", b"Light off target", b"Check the fiber,", b"then press reset"),
    ("THERMISTOR_OPEN", b"Temp sensor fail", b"(open circuit)", b"Call service"),
    ("THERMISTOR_SHORT", b"Temp sensor fail", b"(short circuit)", b"Call service"),
    ("THERMISTOR_RANGE", b"Temp sensor fail", b"(out of range)", b"Call service"),
    ("THERMISTOR_JUMP", b"Temp sensor fail", b"(reading jumped)", b"Call service"),
    ("THERMISTOR_STUCK", b"Temp sensor fail", b"(reading stuck)", b"Call service"),
    ("DOSE_BUDGET", b"Dose limit hit", b"Call service", b""),
    ("LIGHT_OVER_LIMIT", b"Light too strong", b"Call service", b""),
    ("UNCOMMANDED_EMISSION", b"Light while off", b"Call service", b""),
    ("ENABLE_STUCK", b"Laser gate stuck", b"Call service", b""),
    ("SOFTWARE", b"Software error", b"Press reset; if", b"again, service"),
    ("OUT_OF_MEMORY", b"Out of memory", b"Press reset; if", b"again, service"),
    ("LOOP_OVERRUN", b"Loop too slow", b"Press reset; if", b"again, service"),
    ("WATCHDOG_RESET", b"Restarted (hang)", b"Press reset; if", b"again, service"),
)


def fault_words(code):
    """Fault `code` in plain words: its row of _FAULT_WORDS (code, what happened, what to do,
    what to do), or None. The row itself: a slice of it would be a new tuple each time."""
    for row in _FAULT_WORDS:
        if row[0] == code:
            return row
    return None


def compose(panel, row, now_ms):
    """Row `row` of the screen the panel shows now; a notice covers the last three rows."""
    g = panel.grid
    g.begin(row)
    app = panel.app
    c = app.controller
    notice = panel.notice_lines
    state = c.state
    if notice is not None and row >= 5:
        g.put(notice[row - 5])
    elif state == STANDBY:
        _standby(panel, g, row)
    elif state == READY:
        _ready(panel, g, row, c, now_ms)
    elif state == EMITTING or state == PAUSED:  # noqa: SIM109 - a tuple of globals allocates
        _emitting(app, g, row, c, state)
    elif state == COMPLETE:
        _complete(panel, g, row, c)
    elif state == FAULT:
        _fault(g, row, c)
    elif row == 0:
        g.put(b"Starting...")
    g.end(row)


def _standby(panel, g, row):
    screen = panel.screen
    if screen == HOME:
        _home(panel, g, row)
    elif screen == REGION:
        _list(panel, g, row, b"Body region")
    elif screen == CONDITION:
        _list(panel, g, row, panel.region)
    elif screen == SKIN_TYPE:
        _list(panel, g, row, b"Skin type")
    elif screen == SUMMARY:
        _summary(panel, g, row)
    elif screen == EYEWEAR:
        g.put(_EYEWEAR[row])
    elif screen == PIN:
        _pin(panel, g, row)
    elif screen == SERVICE:
        _service(panel, g, row)


def _home(panel, g, row):
    app = panel.app
    if row == 0:
        g.put(b"STANDBY")
    elif row == 1:
        _name(panel, g)
    elif row == 2 and app.treatment is not None:
        _energy(g, app.treatment)
    elif row == 3:
        c = app.controller
        if c.locked or c.blocked or c.calibration_only:
            g.put(b"Arming locked")
    elif row >= 5:
        g.put(b">" if panel.cursor == row - 5 else b" ")
        g.put(HOME_ITEMS[row - 5])


def _list(panel, g, row, title):
    """A title, then six of the panel's items around the cursor, the chosen one marked."""
    if row == 0:
        g.put(title)
    elif row == 7:
        g.put(b"Push:ok Back:<")
    else:
        items, cursor = panel.items, panel.cursor
        index = min(max(0, cursor - 2), max(0, len(items) - 6)) + row - 1
        if index < len(items):
            g.put(b">" if index == cursor else b" ")
            g.put(items[index])


def _name(panel, g):
    """The selected preset's name and skin type, or what else is selected."""
    app = panel.app
    selection = app.selection
    if app.treatment is None:
        g.put(b"No treatment")
    elif selection is None:
        g.put(b"Custom treatment")
    else:
        g.put(panel.selection_name())
        skin = selection.get("skin_type")
        if skin:
            g.put(SKIN[skin - 1], COLS - len(SKIN[skin - 1]))


def _energy(g, treatment):
    """The target energy and the time it takes at full power."""
    g.num(treatment.target_mj // 1000)
    g.put(b" J  ")
    g.clock(treatment.target_mj // max(1, treatment.power_uw // 1000))


def _summary(panel, g, row):
    t = panel.preview
    dose_x10, area_cm2, duty_pct = panel.preview_figures
    if row == 0:
        g.put(panel.preset_name())
    elif row == 1:
        g.put(b"Skin type ")
        g.put(SKIN[panel.skin - 1])
    elif row == 2:
        g.num((t.power_uw + 50000) // 100000, 1)
        g.put(b" W pulsed" if t.pulse_hz else b" W cw")
    elif row == 3:
        g.num(dose_x10, 1)
        g.put(b" J/cm2")
    elif row == 4:
        g.num(area_cm2)
        g.put(b" cm2")
    elif row == 5:
        _energy(g, t)
    elif row == 6 and t.pulse_hz:
        g.num(t.pulse_hz)
        g.put(b" Hz ")
        g.num(duty_pct)
        g.put(b" %")
    elif row == 7:
        g.put(b"Push: confirm")


def _pin(panel, g, row):
    if row == 0:
        g.put(b"Service PIN")
    elif row == 2:
        for _ in range(panel.pin_length):
            g.put(b"*")
        g.put(b"_")
    elif row == 4:
        g.put(b"Turn: ")
        if panel.cursor == PIN_ENTER:
            g.put(b"enter")
        else:
            g.num(panel.cursor)
    elif row == 7:
        g.put(b"Push:add Back:<")


def _service(panel, g, row):
    """Read-only: what the service technician checks first. Its changes go over the serial
    port (docs/serial.md), where each is answered and journalled."""
    app = panel.app
    calibrated, version, device = panel.service_text
    values = app.settings.values if app.settings is not None else None
    if row == 0:
        g.put(b"SERVICE")
    elif row == 1:
        g.put(b"Cal ")
        g.put(calibrated)
    elif row == 2 and values:
        g.put(b"Due every ")
        g.num(values.get("due_days") or 0)
        g.put(b" d")
    elif row == 3:
        g.put(b"Max ")
        g.num(int(app.board["limits"]["max_energy_j"]))
        g.put(b" J")
    elif row == 4:
        g.put(b"FW ")
        g.put(version)
    elif row == 5:
        g.put(device)
    elif row == 7:
        g.put(b"Back: log out")


def _ready(panel, g, row, c, now_ms):
    if row == 0:
        g.put(b"READY  ARMED")
    elif row == 1:
        g.put(b"LASER EMISSION")
    elif row == 2:
        left_ms = c.emission_delay_ms - ticks_diff(now_ms, c.entered_ms)
        if left_ms > 0:
            g.put(b"possible in ")
            g.num((left_ms + 99) // 100, 1)
            g.put(b"s")
        else:
            g.put(b"Press pedal")
    elif row == 4:
        _name(panel, g)
    elif row == 5 and c.treatment is not None:
        _energy(g, c.treatment)
    elif row == 7:
        g.put(b"Back: disarm")


def _emitting(app, g, row, c, state):
    treatment = c.treatment
    delivered_mj = app.dosimeter.energy_mj
    target_mj = treatment.target_mj if treatment is not None else 0
    if row == 0:
        if state == EMITTING:
            g.put(b"EMITTING ")
            g.num((c.power_uw + 50000) // 100000, 1)
            g.put(b"W")
        else:
            g.put(b"PAUSED")
    elif row == 1:
        g.num((delivered_mj + 50) // 100, 1)
        g.put(b"/")
        g.num(target_mj // 1000)
        g.put(b" J")
    elif row == 2 and target_mj > 0:
        g.bar(delivered_mj * COLS // target_mj)
    elif row == 3:
        g.put(b"Left ")
        power_mw = c.power_uw // 1000 if state == EMITTING else 0
        if power_mw <= 0 and treatment is not None:
            power_mw = treatment.power_uw // 1000  # paused: at the prescribed power
        if power_mw > 0:
            g.clock((max(0, target_mj - delivered_mj) + power_mw - 1) // power_mw)
    elif row == 4:
        g.put(b"Sink ")
        if c.thermal.status == OK:
            g.num((c.thermal.temp_mc + 50) // 100, 1)
            g.put(b" C")
        else:
            g.put(b"--")
    elif row == 5:
        _measured(g, c, app.session.measured_mj)
    elif row == 6:
        _thermal_notice(g, c)
    elif row == 7 and not _alarm(g, c):
        if state == PAUSED:
            g.put(b"Pedal:go")
        g.put(b"Back:end", 8)


def _measured(g, c, measured_mj):
    """The dose the power monitor measured, where the board has one: beside the counted one."""
    if c.power_monitor is not None:
        g.put(b"Meas ")
        g.num((measured_mj + 50) // 100, 1)
        g.put(b" J")


def _thermal_notice(g, c):
    """Derating's lowered power, or the warm heatsink."""
    thermal = c.thermal
    if thermal.derate_step < DERATE_STEPS:
        g.put(b"Power cut to ")
        g.num(thermal.derate_step * 100 // DERATE_STEPS)
        g.put(b"%")
    elif thermal.level == WARNING:
        g.put(b"Heatsink warm")


def _alarm(g, c):
    """The alarm sounding (or muted) with its priority; False if none."""
    if c.alarm == NONE:
        return False
    g.put(_PRIORITY[c.alarm])
    g.put(b" ALARM")
    if c.silenced:
        g.put(b" muted")
    return True


def _complete(panel, g, row, c):
    app = panel.app
    if row == 0:
        g.put(b"COMPLETE")
    elif row == 1:
        _name(panel, g)
    elif row == 2:
        g.num((app.dosimeter.energy_mj + 50) // 100, 1)
        g.put(b" J given")
    elif row == 3:
        g.put(b"in ")
        g.clock(app.dosimeter.emitting_ms // 1000)
    elif row == 4:
        _measured(g, c, app.session.measured_last_mj)  # the session ended: its figure kept
    elif row == 5:
        _thermal_notice(g, c)
    elif row == 6:
        _alarm(g, c)
    elif row == 7:
        g.put(b"Push: done")


def _fault(g, row, c):
    words = fault_words(c.fault_code)
    if row == 0:
        g.put(b"FAULT")
        if c.alarm != NONE:
            g.put(_PRIORITY[c.alarm], COLS - len(_PRIORITY[c.alarm]))
    elif row == 1:
        g.put(words[1] if words else (c.fault_code or "").encode())  # a code not listed: itself
    elif row == 3 and words:
        g.put(words[2])
    elif row == 4 and words:
        g.put(words[3])
    elif row == 7:
        g.put(b"Push: reset")

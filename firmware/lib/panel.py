# The operator panel (docs/panel.md): a 128x64 SSD1306 (micropython-lib's driver, frozen into the
# image), a rotary encoder with push ("select") and a back button. A clinician chooses a preset by
# region, condition and skin type, confirms it, arms and follows the treatment without a computer.
#
# Outside the safety path, in three calls of the loop's tick:
# - sense(), before the controller's step: turns and presses move through the screens; a press
#   that means a button (arm, disarm, ack, reset) becomes the step's command, exactly as the
#   serial port's button commands do (one taken in the last tick has this step: the press then
#   waits for the next). The panel never starts emission: arming still needs the footswitch
#   released and pressed after the warning.
# - answer(), after the outputs are applied and before the serial port's next request: the
#   step's command, if it was the panel's, is used up; a refusal shows.
# - update(), after the serial request: what reads or writes the flash (the preset library,
#   a selection, the PIN) runs here; then one row of the screen is composed (screens.py), or else
#   one chunk of 4 cells drawn and sent (textgrid.py); neither in a tick that wrote a status
#   line, took a serial request or wrote to the journal, nor while the loop's ticks take half
#   its period or more (App.run measures them), so that the panel does not make a tick
#   overrun. Nothing in that allocates on its steady path, and the share of a tick is bounded
#   however much of the screen changes: a whole new screen takes 40 ticks.
import screens
from controller import BOOT, COMPLETE, EMITTING, FAULT, PAUSED, READY, STANDBY
from micropython import const
from records import ACK, ARM, DISARM, RESET
from screens import (
    CONDITION,
    EYEWEAR,
    HOME,
    PIN,
    PIN_ENTER,
    REGION,
    SERVICE,
    SKIN_TYPE,
    SUMMARY,
    fault_words,
)
from textgrid import COLS, ROWS, TextGrid
from ticks import ticks_diff

_NOTICE_MS = const(4000)  # a refusal or a notice stays this long
_DEBOUNCE_MS = const(30)  # a button's level must hold this long to count
_PIN_DIGITS = const(12)  # the longest PIN settings.py accepts


class _Button:
    """A contact's presses: its level held for _DEBOUNCE_MS. Held at boot, it is no press."""

    __slots__ = ("level", "_raw", "_since_ms")

    def __init__(self):
        self.level = self._raw = True
        self._since_ms = 0

    def pressed(self, raw, now_ms):
        if raw != self._raw:
            self._raw, self._since_ms = raw, now_ms
        elif raw != self.level and ticks_diff(now_ms, self._since_ms) >= _DEBOUNCE_MS:
            self.level = raw
            return raw
        return False


class Panel:
    """`display`: an SSD1306 from micropython-lib's driver (hw.Hardware.display); `app`: the App
    whose state it shows and whose commands it uses. Tunables: `refresh_ms`, how often the live
    figures (dose, time left, temperature) are composed again; `slack_share`, the part of the
    loop's period a tick may have used for the panel still to compose or draw in it."""

    refresh_ms = 500
    slack_share = 2  # a half

    def __init__(self, display, app, now_ms):
        self.grid = TextGrid(display)
        self.app = app
        self.slack_ms = app.period_ms // self.slack_share
        self.failed = None  # why the display stopped (it stopped answering): the panel is dark
        self.eyewear_asked = bool(app.board["panel"]["eyewear"])
        # Where the operator is: the screen (in STANDBY), its cursor, and what was chosen.
        self.screen = HOME
        self.cursor = 0
        self.items = None  # the list on screen: regions or conditions, as bytes
        self.region = None
        self.skin = 1
        self.preview = None  # the chosen preset's Treatment at the skin type, until confirmed
        self.preview_figures = None  # its (J/cm2 x 10, cm2, duty %), for the summary
        self.service_text = None  # (calibrated on, version, device id) while SERVICE shows
        self.pin_length = 0
        self.notice_lines = None  # two lines over the screen's foot until _notice_ms
        self._notice_ms = now_ms
        self._pin = bytearray(_PIN_DIGITS)
        self._library = None  # [(region, condition, preset name)] while choosing
        self._preset = None
        self._names = (None, b"", None, b"")  # (selection, its name, preset, its name) as bytes
        self._select = _Button()
        self._back = _Button()
        self._reset_was = True  # the reset button, for a refused reset's reason
        self._arm_refusals = app.controller.refusals
        self._command = None  # the button command the panel gave this tick's step
        self._waiting = None  # one the serial port's command kept from its tick: the next one's
        self._eyewear = False  # the ARM waiting is the eyewear screen's: confirmed when it goes
        self._action = None  # what update() must do: REGION, SUMMARY, HOME, PIN
        self._state = BOOT
        self._row = 0  # the next row to compose
        self._rows_due = ROWS  # rows still to compose in this pass
        self._pass_ms = now_ms
        self._requests = self._records = 0  # the serial requests and journal records seen

    # -- before the step -----------------------------------------------------------------------

    def sense(self, inp, now_ms):
        """Turns and presses: navigation, or a button command for this step. A tick whose step
        has the serial port's command keeps the panel's for the next one."""
        steps = inp.encoder_steps
        select = self._select.pressed(inp.select_pressed, now_ms)
        back = self._back.pressed(inp.back_pressed, now_ms)
        command = self._waiting
        if steps or select or back:
            self._redraw()
            state = self.app.controller.state
            in_session = state in (READY, EMITTING, PAUSED)
            if self.failed is not None:  # dark: no choice on a screen nobody sees, but a stop
                command = DISARM if back and in_session else command
            elif state == STANDBY:
                command = self._navigate(steps, select, back) or command
            elif in_session:
                command = DISARM if back else command  # stopping is always allowed
            elif state == COMPLETE:
                command = ACK if select else command
            elif state == FAULT:
                command = RESET if select else command
        if command is None:
            return
        if inp.command is None:
            inp.command = self._command = command
            self._waiting = None
            if command == ARM:  # the operator confirmed the eyewear for this arm, or was not asked
                self.app.eyewear_confirmed = self._eyewear
        else:
            self._waiting = command

    def _navigate(self, steps, select, back):
        screen = self.screen
        if screen == PIN:
            self._pin_entry(steps, select, back)
            return None
        if steps:
            last = 2 if screen == HOME else len(self.items) - 1 if self.items else 0
            self.cursor = max(0, min(last, self.cursor + steps))
        if back:
            self._back_from(screen)
        elif select:
            return self._choose(screen)
        return None

    def _back_from(self, screen):
        if screen in (REGION, EYEWEAR):
            self._home(1 if screen == REGION else 0)
        elif screen == SERVICE:
            self._home(2)
        elif screen == CONDITION:
            self._show_regions()
        elif screen == SKIN_TYPE:
            self._show_conditions()
        elif screen == SUMMARY:
            self.preview = None
            self._show_skin_types(self.skin - 1)

    def _choose(self, screen):
        cursor = self.cursor
        if screen == HOME:
            if cursor == 0:  # arm
                if self.app.treatment is None:
                    self.notice(b"Not armed:", b"choose a", b"treatment first")
                elif self.eyewear_asked:
                    self._go(EYEWEAR, 0)
                else:
                    self._eyewear = False
                    return ARM
            elif cursor == 1:
                self._action = REGION
            else:
                self.pin_length = 0
                self._go(PIN, 0)
        elif screen == EYEWEAR:
            self._eyewear = True  # confirmed once the ARM goes to a step (sense)
            return ARM
        elif screen == REGION:
            self.region = self.items[cursor]
            self._show_conditions()
        elif screen == CONDITION:
            for region, condition, name in self._library:
                if region == self.region and condition == self.items[cursor]:
                    self._preset = name
            self._show_skin_types(0)
        elif screen == SKIN_TYPE:
            self.skin = cursor + 1
            self._action = SUMMARY
        elif screen == SUMMARY:
            self._action = HOME  # select it
        return None

    def _pin_entry(self, steps, select, back):
        if back:
            if self.pin_length:
                self.pin_length -= 1
            else:
                self._home(2)
        elif steps:
            self.cursor = (self.cursor + steps) % (PIN_ENTER + 1)
        elif select:
            if self.cursor == PIN_ENTER:
                self._action = PIN
            elif self.pin_length < _PIN_DIGITS:
                self._pin[self.pin_length] = 48 + self.cursor
                self.pin_length += 1

    def _go(self, screen, cursor):
        self.screen, self.cursor = screen, cursor

    def _home(self, cursor):
        self._library = self.items = self.preview = self.service_text = None
        self._go(HOME, cursor)

    def _show_regions(self):
        regions = []
        for region, _, _ in self._library:
            if region not in regions:
                regions.append(region)
        self.items = regions
        self._go(REGION, max(0, regions.index(self.region)) if self.region in regions else 0)

    def _show_conditions(self):
        self.items = [condition for region, condition, _ in self._library
                      if region == self.region]
        self._go(CONDITION, 0)

    def _show_skin_types(self, cursor):
        self.items = screens.SKIN
        self._go(SKIN_TYPE, cursor)

    def notice(self, title, first, second=b""):
        """Three lines (bytes) over the screen's foot for _NOTICE_MS: a refusal and its
        reason."""
        self.notice_lines = (title, first, second)
        self._notice_ms = self.app.inputs.t_ms
        self._redraw()

    def _notice_text(self, title, text):
        """A notice of `text` (str, as the firmware's refusals are: made once, when refused),
        its words wrapped over two lines of 16 characters."""
        data = text.encode()
        cut = len(data)
        if cut > COLS:
            cut = data.rfind(b" ", 0, COLS + 1)
            cut = COLS if cut <= 0 else cut
        self.notice(title, data[:cut], data[cut:].strip()[:COLS])

    def abandon(self):
        """The tick failed: the panel's command is not carried into the next one."""
        self._command = self._waiting = None
        self._eyewear = False

    def _redraw(self):
        self._rows_due, self._row = ROWS, 0

    # -- what the screens name -----------------------------------------------------------------

    def selection_name(self):
        """The selected preset's name as bytes (made once per selection)."""
        selection = self.app.selection
        names = self._names
        if names[0] is not selection:
            self._names = (selection, selection["protocol"].encode()) + names[2:]
        return self._names[1]

    def preset_name(self):
        names = self._names
        if names[2] is not self._preset:
            self._names = names[:2] + (self._preset, self._preset.encode())
        return self._names[3]

    # -- after the outputs ---------------------------------------------------------------------

    def update(self, now_ms):
        """After the outputs: what the presses asked for, then a bounded share of showing it."""
        app = self.app
        c = app.controller
        self._watch(app, c, now_ms)
        if self._action is not None:
            action, self._action = self._action, None
            self._act(action, now_ms)
        if self._busy(app, now_ms):
            return
        if not self._rows_due and ticks_diff(now_ms, self._pass_ms) >= self.refresh_ms:
            self._redraw()
        if self._rows_due:  # a row composed, or a chunk drawn: never both in one tick
            if self._row == 0:
                self._pass_ms = now_ms
            screens.compose(self, self._row, now_ms)
            self._row = (self._row + 1) % ROWS
            self._rows_due -= 1
            return
        try:
            self.grid.draw()
        except OSError as e:
            self.failed = "display stopped answering (%s)" % e
            app.recorder.error_text("panel", self.failed)

    def _busy(self, app, now_ms):
        """Whether this tick has no room for the screen: it wrote a status line, took a serial
        request or wrote to the journal (each as long as a tick or more on the chip), or the
        loop's last tick used half the period or more (a slow chip: the screen waits)."""
        commands, journal = app.commands, app.journal
        requests = 0 if commands is None else commands.requests
        records = 0 if journal is None else journal.last_n
        busy = requests != self._requests or records != self._records
        self._requests, self._records = requests, records
        return busy or self.failed is not None or app.last_tick_ms >= self.slack_ms or \
            app.recorder.status_written(now_ms)

    def answer(self):
        """After the outputs, before the serial port's next request (App._serial): if the step
        had the panel's button command, it was for that step only; a refusal shows, as for the
        buttons."""
        command = self._command
        if command is None:
            return
        self._command = None
        self.app.inputs.command = None  # before a serial request may give the next step one
        c = self.app.controller
        self._eyewear = False
        if command == ARM and c.state != READY:
            self.app.eyewear_confirmed = False  # _watch shows why
        elif command == RESET and c.state == FAULT:
            self._refused_reset(c)

    def _refused_reset(self, c):
        words = fault_words(c.fault_code)
        if words:
            self.notice(b"Reset refused:", words[2], words[3])
        else:
            self.notice(b"Reset refused:", b"its cause is", b"still there")

    def _watch(self, app, c, now_ms):
        """What changed without the panel: the state; an arm or a reset that was refused."""
        state = c.state
        inp = app.inputs
        if state != self._state:
            # Home, its cursor off Arm: a second push (an acknowledgement, say) arms nothing.
            self._home(1)
            self._waiting = None  # a press for the state that was
            if state not in (READY, EMITTING, PAUSED):
                app.eyewear_confirmed = False  # asked again for the next session
            self._state = state
            self._redraw()
        if c.refusals != self._arm_refusals:
            self._arm_refusals = c.refusals
            self._notice_text(b"Not armed:", c.refusal or "")
        if inp.reset_pressed and not self._reset_was and state == FAULT:
            self._refused_reset(c)  # the step took the press, and FAULT stays
        self._reset_was = inp.reset_pressed
        if self.notice_lines is not None and ticks_diff(now_ms, self._notice_ms) >= _NOTICE_MS:
            self.notice_lines = None
            self._redraw()

    def _act(self, action, now_ms):
        """What reads or writes the flash, after the outputs; choosing only in STANDBY."""
        app = self.app
        if app.controller.state != STANDBY:
            return
        import commands

        try:
            if action == REGION:
                self._library = commands.preset_index(app)
                self._show_regions()
            elif action == SUMMARY:
                preview = commands.preview_preset(app, self._preset, self.skin)
                # Its figures as the screen shows them, worked out once (floats allocate).
                self.preview_figures = (int(preview.dose_j_cm2 * 10 + 0.5),
                                        int(preview.area_cm2 + 0.5), int(preview.duty_pct + 0.5))
                self.preview = preview
                self._go(SUMMARY, 0)
            elif action == HOME:
                commands.apply_preset(app, self._preset, self.skin, self.preview)
                self._home(0)
            elif action == PIN:
                pin, self.pin_length = self._pin[:self.pin_length].decode(), 0
                # The PIN checked as the serial port's is, counted and locked out alike; the
                # serial port's service session stays as it was: the panel's pages only show.
                app.commands.open_service(pin, now_ms, "panel")
                values = app.settings.values if app.settings is not None else None
                calibrated = values.get("calibrated_on") if values else None
                self.service_text = (b"none" if calibrated is None else calibrated.encode(),
                                     app.version.encode(), (app.device_id or "").encode())
                self._go(SERVICE, 0)
        except ValueError as e:  # commands.CommandError too: its reason, without the command
            text = str(e)
            cut = text.find(": ")
            self._notice_text(b"Refused:", text[cut + 2:] if cut >= 0 else text)
        self._redraw()

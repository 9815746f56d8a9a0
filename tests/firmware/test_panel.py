# The operator panel (panel.py) on the App, its display a model of the SSD1306's RAM read back
# through the font this interpreter's framebuf draws: what a test reads is what the pixels say.
from fakedisplay import FULL, FakeDisplay
from support import FakeHardware, Rig, heap_bytes, load_board


def panel_rig(spec=False, board=None, **kwargs):
    board = board or load_board()  # the sim board: a panel that asks for eyewear
    hw = FakeHardware(board=board)
    hw.display = FakeDisplay()
    rig = Rig(board=board, spec=spec, hw=hw, **kwargs).attach_memory()
    settle(rig)
    return rig


def settle(rig, ms=800):
    """Long enough for a whole new screen: composed a row a tick, drawn 4 cells a tick."""
    rig.run_ms(ms)


def screen(rig):
    return rig.hw.display.lines()


def turn(rig, steps):
    rig.hw.encoder_turns = steps
    rig.tick()
    settle(rig)


def push(rig, button="select_pressed"):
    rig.set(**{button: True})
    rig.run_ms(50)  # held past the debounce
    rig.set(**{button: False})
    settle(rig)


def choose(rig, text):
    """Turn to the top of the list, then down to the item that starts with `text`, and push."""
    turn(rig, -20)
    for _ in range(20):
        rows = screen(rig)
        marked = [row for row in rows if row.startswith(">")]
        if marked and marked[0][1:].startswith(text):
            push(rig)
            return
        turn(rig, 1)
    raise AssertionError("%r not found on %r" % (text, screen(rig)))


def test_a_knee_treatment_at_skin_type_v_is_chosen_armed_and_followed_on_the_panel_alone():
    rig = panel_rig()
    rows = screen(rig)
    assert rows[0] == "STANDBY" and rows[1] == "No treatment"
    assert rows[5:8] == [" Arm", ">New treatment", " Service"]  # off Arm after a state change
    choose(rig, "New treatment")
    assert screen(rig)[0] == "Body region" and screen(rig)[1] == ">lumbar spine"
    choose(rig, "knee")
    assert screen(rig)[0] == "knee"  # the region chosen, its conditions below
    choose(rig, "knee pain")
    assert screen(rig)[0] == "Skin type"
    choose(rig, "V")
    # The summary to confirm: the preset at skin type V (its power x 0.8, the same dose).
    assert screen(rig) == ["knee", "Skin type V", "8.0 W cw", "10.0 J/cm2", "100 cm2",
                           "1000 J  2:05", "", "Push: confirm"]
    assert rig.app.treatment is None  # not selected before it is confirmed
    push(rig)
    assert rig.app.selection == {"protocol": "knee", "skin_type": 5}
    assert screen(rig)[1] == "knee           V" and screen(rig)[5] == ">Arm"  # then, Arm
    # Arm: the board asks for the eyewear first; the key is on.
    rig.set(key_on=True)
    push(rig)
    assert screen(rig)[2:5] == ["Eyewear on for", "everyone in the", "room?"]
    assert rig.state == "STANDBY"
    push(rig)
    assert rig.state == "READY"
    rows = screen(rig)
    assert rows[0] == "READY  ARMED" and rows[2].startswith("possible in ")
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    settle(rig)
    assert screen(rig)[2] == "Press pedal"
    rig.press_footswitch()
    rig.run_ms(10000)
    settle(rig, 500)
    rows = screen(rig)
    assert rows[0] == "EMITTING 8.0W"
    delivered = float(rows[1].split("/")[0])
    assert rows[1].endswith("/1000 J") and 70 < delivered < 90, rows
    assert rows[2] == FULL  # 1/16 of the bar per 62.5 J: one cell
    assert rows[3] in ("Left 1:53", "Left 1:54", "Left 1:55"), rows
    assert rows[4] == "Sink 25.0 C"
    assert rows[5].startswith("Meas ")  # the sim board has a power monitor
    assert rows[7] == "        Back:end"
    # Lift the pedal: PAUSED; back ends the session (a disarm: stopping is always allowed).
    rig.hw.press_footswitch(False)
    settle(rig)
    assert screen(rig)[0] == "PAUSED" and screen(rig)[7] == "Pedal:goBack:end"
    push(rig, "back_pressed")
    assert rig.state == "STANDBY"
    arm, session = rig.records("arm")[-1], rig.records("session")[-1]
    assert arm["protocol"] == "knee" and arm["skin_type"] == 5 and arm["eyewear"] is True
    assert session["end"] == "DISARMED" and session["eyewear"] is True
    # The next session asks again: armed with the arm button, the eyewear is not confirmed.
    rig.arm()
    assert rig.state == "READY"
    rig.press("arm_pressed")
    assert rig.records("session")[-1]["eyewear"] is False


def test_complete_shows_the_summary_and_a_push_acknowledges_it():
    rig = panel_rig(spec=True, board=_without_eyewear(), power_w=10.0, dose_j_cm2=1.0,
                    area_cm2=10.0)
    assert screen(rig)[1] == "Custom treatment"
    rig.set(key_on=True)
    choose(rig, "Arm")  # this board does not ask for eyewear
    assert rig.state == "READY"
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    rig.run_ms(1500)
    settle(rig)
    assert rig.state == "COMPLETE"
    rows = screen(rig)
    assert rows[0] == "COMPLETE" and rows[2] == "10.0 J given" and rows[3] == "in 0:01"
    assert rows[4].startswith("Meas ") and 9.0 < float(rows[4].split()[1]) < 11.0  # the monitor
    assert rows[6] == "LOW ALARM" and rows[7] == "Push: done"
    assert "eyewear" not in rig.records("session")[-1]  # not asked, not recorded
    rig.hw.press_footswitch(False)
    push(rig)
    assert rig.state == "STANDBY" and screen(rig)[0] == "STANDBY"
    push(rig)  # a second push, the acknowledgement's echo: the cursor is off Arm
    assert rig.state == "STANDBY" and screen(rig)[0] == "Body region"


def _without_eyewear():
    board = load_board()
    board["panel"]["eyewear"] = False
    return board


def test_a_refused_press_says_why_and_a_fault_says_what_to_do():
    rig = panel_rig(spec=True, board=_without_eyewear())
    choose(rig, "Arm")  # with the key off
    assert rig.state == "STANDBY"
    assert screen(rig)[5:8] == ["Not armed:", "key switch off", ""]
    rig.set(estop_pressed=True)
    settle(rig)
    assert rig.state == "FAULT"
    rows = screen(rig)
    assert rows[0] == "FAULT       HIGH"  # the alarm's priority
    assert rows[1:5] == ["E-stop pressed", "", "Release it, then", "press reset"]
    push(rig)  # the panel's reset, the e-stop still pressed
    assert rig.state == "FAULT"
    assert screen(rig)[5:8] == ["Reset refused:", "Release it, then", "press reset"]
    rig.run_ms(5000)
    settle(rig)
    assert screen(rig)[5:8] == ["", "", "Push: reset"]  # the notice went
    rig.press("reset_pressed")  # the reset button: refused the same way
    settle(rig)
    assert screen(rig)[5:8] == ["Reset refused:", "Release it, then", "press reset"]
    rig.set(estop_pressed=False)
    push(rig)
    assert rig.state == "STANDBY" and screen(rig)[0] == "STANDBY"


def test_the_panel_never_starts_emission_whatever_is_turned_and_pressed():
    """A random operator turns, pushes and backs on every screen, the key on and the pedal held
    from before arming (READY must see it released first): it arms, on both kinds of board, and
    whatever the panel asks there is no light."""
    for board in (load_board(), _without_eyewear()):
        rig = panel_rig(spec=True, board=board)
        rig.set(key_on=True)
        rig.hw.press_footswitch()
        seed, ready_ticks = 17, 0
        for _ in range(600):
            seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF  # the same walk on every interpreter
            action = seed >> 20 & 3
            if action == 0:
                rig.hw.encoder_turns = (seed >> 10) % 7 - 3
            elif action == 1:
                rig.hw.levels["select_pressed"] = not rig.hw.levels["select_pressed"]
            elif action == 2:
                rig.hw.levels["back_pressed"] = not rig.hw.levels["back_pressed"]
            for _ in range(1 + (seed >> 4) % 7):
                rig.tick()
                ready_ticks += rig.state == "READY"
                assert not rig.hw.enable and rig.hw.duty_u16 == 0, rig.state
        assert ready_ticks > 0  # the walk did arm: the rule was put to the test


def test_drawing_is_bounded_per_tick_and_allocates_nothing():
    rig = panel_rig(spec=True)
    display = rig.hw.display
    rig.start_emitting()
    for _ in range(300):  # screen changes included: the state's, the live figures'
        writes, sent, commands = display.data_writes, display.data_bytes, display.commands
        rig.tick()
        assert display.data_writes - writes <= 1 and display.data_bytes - sent <= 32
        assert display.commands - commands <= 6  # a column range and a page range
    assert rig.state == "EMITTING"
    panel = rig.app.panel
    # The panel's own work in EMITTING, then in FAULT: live refreshes and drawing included.
    # (heap_bytes is None on CPython, which has no such heap: MicroPython runs these too.)
    for state in ("EMITTING", "FAULT"):
        if state == "FAULT":
            rig.set(estop_pressed=True)
            settle(rig, 100)
        assert rig.state == state
        for _ in range(100):
            grown = heap_bytes(panel.update, rig.now_ms)
            assert grown in (None, 0), (state, grown)
            rig.tick()


def enter_pin(rig, pin):
    for digit in pin:
        current = screen(rig)[4][6:]
        turn(rig, (int(digit) - (int(current) if current.isdigit() else 10)) % 11)
        push(rig)
    current = screen(rig)[4][6:]
    turn(rig, (10 - int(current)) % 11)  # to "enter"
    assert screen(rig)[4] == "Turn: enter"
    push(rig)


def test_the_service_screens_are_behind_the_pin_and_open_nothing_for_the_serial_port():
    rig = panel_rig()
    choose(rig, "Service")
    assert screen(rig)[0] == "Service PIN"
    enter_pin(rig, "4320")  # a wrong PIN (the rig's is 4321)
    assert screen(rig)[5:8] == ["Refused:", "wrong PIN (4", "tries left)"]
    assert rig.records("pin_wrong")[-1]["failures"] == 1
    enter_pin(rig, "4321")
    rows = screen(rig)
    assert rows[0] == "SERVICE" and rows[1] == "Cal 2026-11-01" and rows[7] == "Back: log out"
    assert rig.records("service_open")[-1]["via"] == "panel"
    # The panel's pages only show: the serial port still needs its own PIN.
    assert not rig.app.commands.service_open
    assert "open a service session first" in rig.send({"cmd": "journal_export"})["error"]
    push(rig, "back_pressed")
    assert screen(rig)[0] == "STANDBY"


def test_a_display_that_stops_answering_leaves_the_treatment_running():
    rig = panel_rig(spec=True)
    rig.start_emitting()
    rig.hw.display.fail = True
    rig.hw.encoder_turns = 1  # anything that redraws
    rig.run_ms(1000)
    assert rig.state == "EMITTING" and rig.hw.enable
    assert rig.app.panel.failed.startswith("display stopped answering")
    assert [e for e in rig.events("error") if e.get("where") == "panel"]


def test_the_panel_draws_only_in_a_ticks_slack():
    """On the device App.run measures each tick: while they take half the loop's period or more
    the panel neither composes nor draws (the screen waits for ticks with room), nor in a tick
    that took a serial request or wrote to the journal."""
    rig = panel_rig(spec=True)
    app, display = rig.app, rig.hw.display
    app.last_tick_ms = app.period_ms // 2  # slow ticks
    rig.hw.encoder_turns = -1  # a new cursor: the screen must change
    writes = display.data_writes
    rig.run_ms(1000)
    assert display.data_writes == writes and screen(rig)[6] == ">New treatment"
    # A host asking for status every tick: a request each tick, no room for the screen.
    app.last_tick_ms = app.period_ms // 2 - 1
    for _ in range(50):
        rig.hw.serial_in += b'{"cmd": "status"}\n'
        rig.tick()
    assert display.data_writes == writes
    rig.run_ms(1000)  # ticks with room: the screen catches up
    assert display.data_writes > writes and screen(rig)[5] == ">Arm"


def test_a_custom_treatment_in_the_treatment_file_shows_as_custom():
    """{"protocol": {...}} is a custom treatment written out, not a preset's name."""
    import startup
    from support import scratch

    path = scratch("treatment-custom.json")
    with open(path, "w") as f:
        f.write('{"protocol": {"power_w": 5, "dose_j_cm2": 4, "area_cm2": 10}}')
    rig = panel_rig(spec=True)
    rig.app.selection = startup.selection_of(path)
    assert rig.app.selection is None
    rig.run_ms(1000)
    assert rig.state == "STANDBY" and screen(rig)[1] == "Custom treatment"


def test_a_dark_panel_chooses_nothing_and_still_stops():
    rig = panel_rig(spec=True)
    rig.set(key_on=True)
    rig.hw.display.fail = True
    turn(rig, -1)  # to Arm; drawing it, the display stops answering
    assert rig.app.panel.failed
    push(rig)  # what would be the eyewear question, never seen ...
    push(rig)  # ... and a push that would confirm it
    assert rig.state == "STANDBY" and not rig.app.eyewear_confirmed
    rig.start_emitting()  # armed with the button
    push(rig, "back_pressed")  # back still stops
    assert rig.state == "STANDBY"
    assert rig.records("session")[-1]["eyewear"] is False


def _in_the_tick_a_press_lands(rig, button, line):
    """Hold `button` and send `line` (a button command that changes no state here) over the
    serial port so that both reach the same tick's step: the command taken by the tick before,
    after its outputs; the press landing (its debounce over) in this one. The press waits."""
    from panel import _Button

    panel = rig.app.panel
    held = panel._select if button == "select_pressed" else panel._back
    rig.hw.levels[button] = True
    for _ in range(10):
        probe = _Button()  # the button's debounce, run ahead on a copy
        probe.level, probe._raw, probe._since_ms = held.level, held._raw, held._since_ms
        assert not probe.pressed(True, rig.now_ms)
        if probe.pressed(True, rig.now_ms + rig.period_ms):
            break  # the press lands in the tick after the next one
        rig.tick()
    requests = rig.app.commands.requests
    rig.hw.serial_in = line
    rig.tick()
    assert rig.app.commands.requests == requests + 1 and not held.level  # taken; no press yet
    rig.tick()
    assert held.level and panel._waiting is not None  # the press landed, and waits
    rig.hw.levels[button] = False


def test_a_press_in_the_tick_of_a_serial_command_waits_for_the_next_tick():
    rig = panel_rig(spec=True)
    rig.set(key_on=True)
    choose(rig, "Arm")
    assert screen(rig)[2] == "Eyewear on for"
    _in_the_tick_a_press_lands(rig, "select_pressed", b'{"cmd": "ack"}\n')
    settle(rig)
    assert rig.state == "READY"  # the ARM went to the next tick's step
    assert rig.records("arm")[-1]["eyewear"] is True
    rig.press("arm_pressed")  # disarm with the button; then arm with it: not confirmed
    rig.press("arm_pressed")
    assert rig.state == "READY" and rig.records("arm")[-1]["eyewear"] is False
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    assert rig.state == "EMITTING"
    _in_the_tick_a_press_lands(rig, "back_pressed", b'{"cmd": "ack"}\n')
    settle(rig, 100)
    assert rig.state == "STANDBY"  # the panel's stop was not lost


def test_a_session_cut_by_a_reset_keeps_its_eyewear_in_the_closing_record():
    rig = panel_rig(spec=True)
    rig.set(key_on=True)
    choose(rig, "Arm")
    push(rig)
    rig.run_ms(rig.board["timing"]["emission_delay_ms"])
    rig.press_footswitch()
    rig.run_ms(1000)
    assert rig.state == "EMITTING" and rig.records("arm")[-1]["eyewear"] is True
    # The loop hangs; the watchdog resets the chip; the next boot closes the session RTC memory
    # kept, from its arm record.
    rig.hw.reboot()
    again = Rig(board=rig.board, hw=rig.hw, start_ms=rig.now_ms, watchdog_reset=True)
    again.attach_memory(rig.flash, reset="WATCHDOG_RESET")
    closing = again.records("session")[-1]
    assert closing["dose_from"] == "rtc_memory" and closing["eyewear"] is True

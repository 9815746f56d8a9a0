"""`laserctl console --port PORT [--pin PIN] [--log FILE.jsonl]`: an interactive console over the
serial protocol (docs/serial.md) for engineers and service technicians, on a board or the virtual
device (`laserctl vdevice --pty PATH`). `help` lists the commands; each sends its namesake request.

- The **status line** (state, power, energy delivered/target, heatsink temperature and thermal
  level, alarm, fault, why arming is locked or blocked, service session, preset) is printed at the
  start, on `status`, and after every accepted command that changes something.
- A reader thread takes every line the device sends, all the time (a port nobody reads drops
  lines), logs it, and prints the notable **events** at once as `* ...`; status events are quiet.
- A refusal prints `error: <the device's own words>`; an unknown command or wrong arguments print
  `usage: ...` and send nothing; a silent device prints `no answer: ...` and the console goes on.
- `service` takes --pin, else $LASERCTL_PIN, else asks (hidden); a given PIN that the device calls
  wrong is forgotten, so that retries cannot run into the lockout. `pin` asks twice. A bare
  `limits` only shows them. Calibration and the journal's export have their own tools.
- **Safety**: nothing is sent but what the user typed, `status` polls and, on quit, EOF, Ctrl-C,
  SIGTERM or SIGHUP with a service session open, a `logout`.
- **Piped stdin**: one command per line, echoed as `> LINE` (`#` starts a comment); a PIN to be
  asked is the next line. `--log FILE.jsonl` appends every JSON line received (events and
  replies) as received, flushed and synced per line, for `laserctl plot FILE.jsonl`.

Exit status: 0; 1 when a command was refused, not answered or not understood (for scripts); 2 when
the port or the log cannot be opened or the firmware does not answer at the start."""

import cmd
import collections
import contextlib
import datetime
import getpass
import json
import os
import signal
import sys
import threading

import serial

from host_tools.serial_link import PIN_ENV, DeviceError, SerialLink

READY_TIMEOUT_S = 20.0  # for the firmware to answer at the start and after `restart` (a boot)
REPLY_TIMEOUT_S = 5.0  # for one reply; a longer silence is a device that stopped answering
POLL_PERIOD_S = 0.05  # the reader's pace; the device sends a status line every 250 ms
LIMIT_FIELDS = ("max_power_w", "max_energy_j")
LINK_ERRORS = (DeviceError, serial.SerialException, OSError)  # no answer, or the port is gone
COMMANDS = {  # name: (usage, what it does); a usage that is the bare name takes no arguments
    "status": ("status", "the status line"),
    "list": ("list", "the device's presets; * marks the selected one"),
    "select": ("select NAME [SKIN_TYPE]", "select a preset (STANDBY), for skin type 1..6"),
    "arm": ("arm", "as the arm button: READY; light still needs the footswitch"),
    "disarm": ("disarm", "end the session (READY, EMITTING, PAUSED): dark at once"),
    "ack": ("ack", "as the ack button: silence a fault's alarm, or leave COMPLETE"),
    "reset": ("reset", "as the reset button: clear a latched fault once its cause is gone"),
    "journal": ("journal [COUNT]", "the last COUNT journal records (1..4, default 4)"),
    "service": ("service", "open a service session (the PIN: --pin, $LASERCTL_PIN or asked)"),
    "logout": ("logout", "close the service session"),
    "limits": ("limits [max_power_w=W] [max_energy_j=J] | limits clear",
               "show, lower, or lift the lowered limits (service; apply after restart)"),
    "pin": ("pin", "a new service PIN, asked twice (service; applies at once)"),
    "restart": ("restart", "reset the device (service), e.g. to apply changed settings"),
    "help": ("help [COMMAND]", "this list, or one command's line"),
    "quit": ("quit", "leave, logging out of an open service session (also exit, Ctrl-D)"),
}
EVENTS = {  # kind: its one-liner from its fields ("-" for a missing one); "status" is not shown
    "state": "state {state}", "halt": "halted in {state}: the loop stopped, laser off",
    "fault": "FAULT {code}", "refused": "refused: {reason}",
    "session": "session ended: {end}, {delivered_j} of {target_j} J, {emitting_ms} ms of light",
    "veto": "supervisor veto in {state}: {why}", "service": "service session closed: {why}",
    "thermal": "thermal {level} at {temp_c} °C, power {derate_pct}%",
    "boot": "boot: firmware {version}, board {board}",
    "maintenance": "maintenance boot ({why}): no loop, no protocol; to leave: {leave}",
    "halted": "HALTED: the control loop cannot run: {reason}",
}


def _number(value):
    return "-" if value is None else "%.1f" % value


def _pairs(fields):
    """A dict as `key=value key=value` (the form `limits` takes)."""
    return " ".join("%s=%s" % (k, v if isinstance(v, str) else json.dumps(v))
                    for k, v in sorted((fields or {}).items()))


def status_text(st, today=None):
    """The status line from a `status` reply `st` (a status event lacks service and preset).
    `today` ("YYYY-MM-DD", default the host's date): the device has no clock, so the host says
    when its calibration is overdue."""
    thermal = st.get("thermal", "?")
    if st.get("derate_pct", 100) < 100:
        thermal += " derated to %d%%" % st["derate_pct"]
    parts = [st.get("state", "?"), "%.2f W" % (st.get("power_w") or 0.0),
             "%s/%s J" % (_number(st.get("delivered_j")), _number(st.get("target_j"))),
             "%s °C %s" % (_number(st.get("temp_c")), thermal),
             "alarm %s%s" % (st.get("alarm"), " (silenced)" if st.get("silenced") else ""),
             "fault %s" % (st.get("fault") or "none")]
    parts += ["%s: %s" % (key.upper(), st[key]) for key in ("locked", "blocked") if st.get(key)]
    due_on = (st.get("settings") or {}).get("due_on")
    if due_on and due_on < (today or datetime.date.today().isoformat()):
        parts.append("CALIBRATION OVERDUE since %s" % due_on)
    if "service" in st:
        parts.append("service session %s" % ("OPEN" if st["service"] else "closed"))
    if st.get("selected"):
        parts.append("preset " + _pairs(st["selected"]))
    return "status: " + " | ".join(parts)


def event_text(ev):
    """The event line `ev` as a readable one-liner; None for the periodic status line."""
    kind = ev.get("ev")
    if kind == "selftest":
        return "self-test passed" if ev.get("ok") else "self-test FAILED: %s" % ev.get("problem")
    if kind == "error":  # "where" (a file) only for some
        return "device error: " + ": ".join(str(ev[k]) for k in ("where", "error") if k in ev)
    if kind in EVENTS:
        fields = {k: v for k, v in ev.items() if v is not None}
        return EVENTS[kind].format_map(collections.defaultdict(lambda: "-", fields))
    return None if kind == "status" else "event: %s" % json.dumps(ev)


class Console(cmd.Cmd):
    """cmd.Cmd for the loop, line editing and completion, with its own dispatch. `link`: an open
    SerialLink; `pin`: the service PIN to use, or None to ask for it; `interactive`: whether stdin
    is a terminal (prompt, hidden PIN entry, event lines printed above the line being typed)."""

    def __init__(self, link, pin, interactive):
        super().__init__(completekey="tab" if interactive else None)
        self.prompt = "laser> " if interactive else ""
        self._link, self._pin, self._interactive = link, pin, interactive
        self._link_lock = threading.Lock()  # the reader and the commands share the port
        self._out_lock = threading.Lock()
        self._stop = threading.Event()
        self._at_prompt = False  # whether the reader must redraw the prompt after its lines
        self._service_open = False
        self.failed = False  # a command was refused, not answered or not understood

    def _say(self, text):
        with self._out_lock:
            if self._at_prompt and self._interactive:  # above the line being typed, kept
                import readline  # already loaded by cmd for line editing

                typed = readline.get_line_buffer()
                sys.stdout.write("\r\033[K%s\n%s%s" % (text, self.prompt, typed))
            else:
                sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def _show_events(self):
        """Print the notable events received so far (with the link lock held)."""
        events, self._link.events = self._link.events, []
        for ev in events:
            if ev.get("ev") == "service" and not ev.get("open"):
                self._service_open = False
            text = event_text(ev)
            if text is not None:
                self._say("* " + text)

    def _read_events(self):
        while not self._stop.wait(POLL_PERIOD_S):
            with self._link_lock:
                try:
                    self._link.poll()
                except LINK_ERRORS as e:
                    return self._say("port error: %s (no more events: quit, reconnect)" % e)
                self._show_events()

    def _wait_ready(self):
        """Print the status once the firmware answers; one of LINK_ERRORS if it does not."""
        with self._link_lock:
            status = self._link.wait_ready(READY_TIMEOUT_S)
            clock = self._link.sync_clock()
            self._show_events()
        self._service_open = status["service"]
        if clock:
            self._say(clock)
        self._say(status_text(status))

    def _send(self, name, **fields):
        """The device's reply to one request if it accepted it; else None, the reason printed."""
        with self._link_lock:
            try:
                reply = self._link.request(name, **fields)
            except LINK_ERRORS as e:
                reply = {"ok": False, "error": None, "why": str(e)}
            self._show_events()
        if reply.get("service") is not None:
            self._service_open = reply["service"]
        if reply["ok"]:
            return reply
        self.failed = True
        if reply["error"] is None:
            return self._say("no answer: %s" % reply["why"])
        self._say("error: %s" % reply["error"])
        if name == "service" and "wrong PIN" in reply["error"] and self._pin:
            self._pin = None  # retrying a wrong PIN only runs into the lockout
            self._say("(the given PIN is forgotten: the next `service` asks for one)")

    def _ask_secret(self, prompt):
        if self._interactive:
            return getpass.getpass(prompt)
        return sys.stdin.readline().strip()  # piped: the next line, never echoed

    def run(self):
        """Wait for the firmware, then read commands until quit, EOF or Ctrl-C; returns the
        exit status. A service session still open at the end is logged out."""
        try:
            self._wait_ready()
        except LINK_ERRORS as e:
            print("laserctl console: %s" % e, file=sys.stderr)
            return 2
        self._say("type help for the commands, quit to leave")
        reader = threading.Thread(target=self._read_events, daemon=True)
        reader.start()
        try:
            self.cmdloop()
        except KeyboardInterrupt:
            self._at_prompt = False
            self._say("\ninterrupted" if self._interactive else "interrupted")  # off the prompt
        finally:
            self._stop.set()
            reader.join()
            if self._service_open and self._send("logout") is not None:
                self._say("logged out of the service session")
            elif self._service_open:
                self._say("the service session stays open until its idle timeout or a reset")
        return 1 if self.failed else 0

    def preloop(self):
        self._at_prompt = True

    def onecmd(self, line):
        """Run one input line; True to leave. A line not understood sends nothing."""
        self._at_prompt = False
        words = line.split()
        if not self._interactive and line != "EOF":
            self._say("> " + line.strip())
        name = words[0] if words else "#"
        if line == "EOF" or name in ("quit", "exit"):
            if line == "EOF" and self._interactive:
                self._say("")  # end the prompt's line
            return True
        if name.startswith("#"):
            pass  # and unlike cmd, never repeat the last command on an empty line: it may be arm
        elif name not in COMMANDS:
            self.failed = True
            self._say("usage: unknown command %r; the commands: %s (calibration and the journal's "
                      "export have their own tools)" % (name, ", ".join(COMMANDS)))
        elif COMMANDS[name][0] == name and len(words) > 1:
            self._usage(name, " (no arguments)")
        elif hasattr(self, "_do_" + name):
            getattr(self, "_do_" + name)(words[1:])
        elif self._send(name) is not None:  # arm, disarm, ack, reset, logout
            self._do_status()
        self._at_prompt = True
        return False

    def completenames(self, text, *ignored):
        return [name for name in COMMANDS if name.startswith(text)]

    def _usage(self, name, why=""):
        self.failed = True
        self._say("usage: %s%s" % (COMMANDS[name][0], why))

    # -- the commands that do more than send their request and show the status -----------------

    def _do_status(self, words=()):
        reply = self._send("status")
        if reply is not None:
            self._say(status_text(reply))

    def _do_help(self, words):
        if words[1:] or words and words[0] not in COMMANDS:
            return self._usage("help")
        for name, (usage, what) in COMMANDS.items():
            if name in (words or [name]):
                if len(usage) > 24:  # a line of its own
                    self._say("  " + usage)
                    usage = ""
                self._say("  %-24s %s" % (usage, what))

    def _do_list(self, words):
        reply = self._send("list")
        if reply is not None:
            chosen = (reply["selected"] or {}).get("protocol")
            for name in reply["protocols"]:
                self._say("%s %s" % ("*" if name == chosen else " ", name))

    def _do_select(self, words):
        if not 1 <= len(words) <= 2 or not all(w.isdigit() for w in words[1:]):
            return self._usage("select")
        fields = {"protocol": words[0]}
        if len(words) == 2:
            fields["skin_type"] = int(words[1])
        reply = self._send("select", **fields)
        if reply is not None:
            self._say("selected %s: %.1f W, %.1f J, %.1f s" % (
                _pairs(reply["selected"]), reply["power_w"], reply["target_j"], reply["time_s"]))
            self._do_status()

    def _do_journal(self, words):
        if len(words) > 1 or not all(w.isdigit() for w in words):
            return self._usage("journal")
        reply = self._send("journal", **({"count": int(words[0])} if words else {}))
        for record in reply["records"] if reply else ():
            fields = _pairs({k: v for k, v in record.items() if k not in ("n", "ev")})
            self._say(("#%s %s %s" % (record.get("n"), record.get("ev"), fields)).rstrip())

    def _do_service(self, words):
        pin = self._pin or self._ask_secret("service PIN: ")
        if not pin:
            return self._say("no PIN: nothing sent")
        reply = self._send("service", pin=pin)
        if reply is not None:
            self._say("service session open (closes after %s s without a service command)"
                      % reply["idle_timeout_s"])
            self._do_status()

    def _do_limits(self, words):
        fields = {}
        for word in words if words != ["clear"] else ():
            key, _, value = word.partition("=")
            try:
                fields[key] = float(value) if "." in value else int(value)
            except ValueError:
                key = None
            if key not in LIMIT_FIELDS:
                return self._usage("limits")
        if not words:  # only shown: lifting every lowering takes `clear`, never a bare `limits`
            status = self._send("status")
            if status is not None and status.get("settings"):
                settings = status["settings"]
                self._say("limits: %s (calibrated on %s, due on %s)" % (
                    _pairs(settings["limits"]), settings["calibrated_on"], settings["due_on"]))
            return
        reply = self._send("limits", **fields)
        if reply is not None:
            self._say("saved: %s; applies %s" % (_pairs(reply["settings"]["limits"]),
                                                  reply["applies"]))
            self._do_status()

    def _do_pin(self, words):
        new = self._ask_secret("new PIN: ")
        if not new or new != self._ask_secret("new PIN again: "):
            self.failed = True
            return self._say("error: the two PINs differ or are empty: nothing sent")
        if self._send("pin", new=new) is not None:
            self._pin = None  # the given PIN is the old one now
            self._say("PIN changed (applies now)")
            self._do_status()

    def _do_restart(self, words):
        if self._send("restart") is not None:
            self._service_open = False  # every reset ends the session
            self._say("restarting ...")
            try:
                self._wait_ready()
            except LINK_ERRORS as e:
                self.failed = True
                self._say("no answer: the device did not come back: %s" % e)


def _log_writer(log):
    def write(line):
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())  # a power cut of the host loses nothing already written

    return write


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # the way out of Ctrl-C, which logs out of a service session


def main(args):
    """`laserctl console`. args.port: the serial port; args.pin: the service PIN, or None
    ($LASERCTL_PIN, else asked at `service`); args.log: a JSONL file to append every line received
    to, or None. Returns the exit status (see above)."""
    with contextlib.ExitStack() as stack:
        try:
            link = stack.enter_context(SerialLink(args.port, REPLY_TIMEOUT_S))
            if args.log:  # opened once the port is: a port typo leaves no empty log behind
                log = stack.enter_context(open(args.log, "a", encoding="utf-8"))
                link.on_line = _log_writer(log)
        except (OSError, DeviceError) as e:
            print("laserctl console: %s" % e, file=sys.stderr)
            return 2
        for signum in (signal.SIGTERM, signal.SIGHUP):
            stack.callback(signal.signal, signum, signal.signal(signum, _interrupt))
        try:
            return Console(link, args.pin or os.environ.get(PIN_ENV), sys.stdin.isatty()).run()
        except KeyboardInterrupt:  # while waiting for the firmware: nothing sent but status
            return 130


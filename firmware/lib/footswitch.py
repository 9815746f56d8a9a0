# The footswitch's two contacts: normally-open (closed when pressed) and normally-closed (closed
# when released). Pressed means NO closed and NC open, held for the debounce time; released means
# NC closed and NO open. A release acts at once (the safe direction: light off within a tick).
# Contacts that disagree for longer than the mismatch window are a broken wire or a stuck contact.
# The disagreement adds up across presses: only the pedal seen up on both contacts (each contact
# then shows it switches) clears it, so that no rhythm of presses can hide a broken wire.
from ticks import ticks_diff


class Footswitch:
    def __init__(self, debounce_ms, mismatch_ms):
        self.debounce_ms = debounce_ms
        self.mismatch_ms = mismatch_ms
        self.pressed = False  # debounced press: may start or resume emission
        self.released = False  # both contacts agree it is up
        self._press_since_ms = None
        self._mismatch_ms = 0  # disagreement since the pedal was last seen up on both contacts
        self._disagreed = False  # at the last read ...
        self._read_ms = 0  # ... which was then

    def read(self, no_closed, nc_closed, now_ms):
        down = no_closed and not nc_closed
        self.released = nc_closed and not no_closed
        if not down:
            self._press_since_ms = None
            self.pressed = False
        elif self._press_since_ms is None:
            self._press_since_ms = now_ms
            self.pressed = self.debounce_ms == 0
        else:
            self.pressed = ticks_diff(now_ms, self._press_since_ms) >= self.debounce_ms
        if self._disagreed:  # the time since the last read counts as disagreement
            # Kept within the window: an unbounded sum would overflow the small integers.
            self._mismatch_ms = min(self.mismatch_ms,
                                    self._mismatch_ms + ticks_diff(now_ms, self._read_ms))
        self._disagreed = no_closed == nc_closed
        self._read_ms = now_ms
        if self.released:
            self._mismatch_ms = 0

    def miswired(self, now_ms):
        """True once the contacts have disagreed for the mismatch window in all, since the
        pedal was last seen up on both."""
        return self._mismatch_ms >= self.mismatch_ms

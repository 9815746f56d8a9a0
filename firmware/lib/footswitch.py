# The footswitch's two contacts: normally-open (closed when pressed) and normally-closed (closed
# when released). Pressed means NO closed and NC open, held for the debounce time; released means
# NC closed and NO open. A release acts at once (the safe direction: light off within a tick).
# Contacts that disagree for longer than the mismatch window are a broken wire or a stuck contact.
from ticks import ticks_add, ticks_diff


class Footswitch:
    def __init__(self, debounce_ms, mismatch_ms):
        self.debounce_ms = debounce_ms
        self.mismatch_ms = mismatch_ms
        self.pressed = False  # debounced press: may start or resume emission
        self.released = False  # both contacts agree it is up
        self._press_since_ms = None
        self._mismatch_since_ms = None

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
        if no_closed == nc_closed:
            since = self._mismatch_since_ms
            if since is None:
                self._mismatch_since_ms = now_ms
            elif ticks_diff(now_ms, since) > self.mismatch_ms:
                # Keep the age bounded: an unbounded one would wrap after 2**29 ms (6.2 days)
                # and clear the fault while the wire is still broken.
                self._mismatch_since_ms = ticks_add(now_ms, -self.mismatch_ms)
        else:
            self._mismatch_since_ms = None

    def miswired(self, now_ms):
        """True once the contacts have disagreed for longer than the mismatch window."""
        since = self._mismatch_since_ms
        return since is not None and ticks_diff(now_ms, since) >= self.mismatch_ms

# The therapy laser controller. Runs after boot.py; Ctrl-C (or mpremote) stops the loop with the
# laser off and leaves the REPL.
import app
import hw

app.main(hw)

# Runs first after every reset, before main.py: gate the laser off before anything else happens.
import hw

hw.boot_safe()

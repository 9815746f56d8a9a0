"""Host tools for the therapy-laser firmware: virtual device, scenarios, console, bench."""

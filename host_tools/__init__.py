"""Shared: the host tools of the therapy-laser firmware: `laserctl` (cli.py), one module per
subcommand named after it, over the shared device layer (paths, device_lines, manifest, vdevice,
serial_link, virtual_panel)."""

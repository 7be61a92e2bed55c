"""``python -m gateway.config …``: see :mod:`gateway.config.commands`."""

from gateway.config.commands import main

main()

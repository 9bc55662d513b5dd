"""``python -m dirt`` is the ``dirt`` command."""

from dirt.cli import main

main()

#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        # Ctrl-C (or `serve` stopping a worker that is still starting): the shell's
        # exit status for SIGINT, not a traceback in the server's log.
        sys.exit(130)


if __name__ == "__main__":
    main()

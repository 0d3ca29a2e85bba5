#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lukittu.settings")
    # Local development settings that `make run` keeps in .env, so that operator commands run
    # as written; the environment always wins, and servers (gunicorn) never read the file.
    from lukittu.env import load_env_file

    load_env_file(Path(__file__).resolve().parent / ".env")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A setting the environment got wrong: its message names it and says what it takes,
        # which a traceback would only bury.
        sys.exit(f"Configuration error: {error}")


if __name__ == "__main__":
    main()

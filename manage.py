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
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

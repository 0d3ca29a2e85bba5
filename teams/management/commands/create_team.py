"""manage.py create_team NAME [--file-uploads] [--storage-limit-mb N] [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from teams.services import COMMAND_LINE, team_create


class Command(BaseCommand):
    help = "Create a team and print its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--file-uploads", action="store_true", help="Enable release file uploads."
        )
        parser.add_argument("--storage-limit-mb", type=int, default=100)
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 255:
            raise CommandError("NAME must be 1 to 255 characters")
        if options["storage_limit_mb"] < 0:
            raise CommandError("--storage-limit-mb must not be negative")
        team = team_create(
            name=name,
            file_uploads=options["file_uploads"],
            storage_limit_mb=options["storage_limit_mb"],
            actor=COMMAND_LINE,
        )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "teamId": str(team.id),
                        "name": team.name,
                        "fileUploads": team.file_uploads_enabled,
                        "storageLimitBytes": team.storage_limit_bytes,
                    }
                )
            )
        else:
            self.stdout.write(str(team.id))

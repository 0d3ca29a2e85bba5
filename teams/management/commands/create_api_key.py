"""manage.py create_api_key TEAM_ID [--expires-in-days N] [--json]"""

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lukittu.api import iso_utc
from teams.models import Team
from teams.services import COMMAND_LINE, api_key_create


class Command(BaseCommand):
    help = "Create an API key for a team and print it. This is the only time it is shown."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_id")
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            team_id = uuid.UUID(options["team_id"])
        except ValueError:
            raise CommandError("TEAM_ID must be a UUID") from None
        team = Team.objects.filter(pk=team_id, deleted_at__isnull=True).first()
        if team is None:
            raise CommandError(f"No team {team_id}")
        if options["expires_in_days"] is not None and options["expires_in_days"] < 1:
            raise CommandError("--expires-in-days must be at least 1")
        key, plain = api_key_create(
            team=team,
            name=options["name"],
            expires_in_days=options["expires_in_days"],
            actor=COMMAND_LINE,
        )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": str(key.id),
                        "teamId": str(team.id),
                        "apiKey": plain,
                        "prefix": key.prefix,
                        "expiresAt": iso_utc(key.expires_at) if key.expires_at else None,
                    }
                )
            )
        else:
            self.stdout.write(plain)

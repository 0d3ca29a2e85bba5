"""manage.py team_public_key TEAM_ID [--base64]"""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from teams.keys import key_pair_for, public_key_base64
from teams.models import Team


class Command(BaseCommand):
    help = (
        "Print a team's public key (PEM, or bare base64 with --base64), the key its software "
        "embeds for the classloader. Makes the team's key pair if it has none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_id")
        parser.add_argument(
            "--base64",
            action="store_true",
            help="Print the key as one line of base64 (the PEM's body), as Lukittu shows it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            team_id = uuid.UUID(options["team_id"])
        except ValueError:
            raise CommandError("TEAM_ID must be a UUID") from None
        team = Team.objects.filter(pk=team_id, deleted_at__isnull=True).first()
        if team is None:
            raise CommandError(f"No team {team_id}")
        # Teams made by team_create have one; any other gets it now, the one it keeps.
        pem = key_pair_for(team).public_key_pem
        self.stdout.write(public_key_base64(pem) if options["base64"] else pem.strip())

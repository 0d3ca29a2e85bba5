"""manage.py reseal_team_keys --old-secret-env NAME"""

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from teams.keys import Resealed, reseal
from teams.models import TeamKeyPair


class Command(BaseCommand):
    help = (
        "After TEAM_KEYS_SECRET changed: seal every team's private key with the new secret, "
        "opening it with the old one, read from the environment variable named by "
        "--old-secret-env (never from the command line, where other users and the shell's "
        "history would see it). Keys already sealed with the new secret are left alone, so it "
        "can be run again. Exits 1 if a key opens with neither secret."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--old-secret-env",
            required=True,
            metavar="NAME",
            help="The environment variable that holds the previous TEAM_KEYS_SECRET.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["old_secret_env"]
        old_secret = os.environ.get(name, "")
        if not old_secret:
            raise CommandError(f"Set {name} to the previous TEAM_KEYS_SECRET")
        counts = dict.fromkeys(Resealed, 0)
        unopened = []
        for key_pair in TeamKeyPair.objects.order_by("team_id").iterator():
            outcome = reseal(key_pair, old_secret)
            counts[outcome] += 1
            if outcome is Resealed.UNOPENED:
                unopened.append(str(key_pair.team_id))
        for outcome, count in counts.items():
            self.stdout.write(f"{count} {outcome.value}")
        if unopened:
            raise CommandError(
                "These teams' private keys open with neither secret: " + ", ".join(unopened)
            )

"""manage.py create_license TEAM_ID --product ID [--product ID ...] [--hwid-limit N]
[--ip-limit N] [--expires-in-days N] [--suspended] [--json]"""

import json
import uuid
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from lukittu.api import iso_utc
from teams.models import Team
from teams.services import COMMAND_LINE, license_create


class Command(BaseCommand):
    help = (
        "Create a license for a team's products and print its key. This is the only time the "
        "key is shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_id")
        parser.add_argument(
            "--product",
            action="append",
            required=True,
            metavar="ID",
            help="A product of the team the license opens; repeat for several.",
        )
        parser.add_argument(
            "--hwid-limit", type=int, default=None, help="Devices at once (default: unlimited)."
        )
        parser.add_argument(
            "--ip-limit", type=int, default=None, help="IP addresses at once (default: unlimited)."
        )
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--suspended", action="store_true", help="Create it suspended.")
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            team_id = uuid.UUID(options["team_id"])
        except ValueError:
            raise CommandError("TEAM_ID must be a UUID") from None
        team = Team.objects.filter(pk=team_id, deleted_at__isnull=True).first()
        if team is None:
            raise CommandError(f"No team {team_id}")
        products = []
        for text in options["product"]:
            try:
                products.append(uuid.UUID(text))
            except ValueError:
                raise CommandError(f"--product {text!r} is not a UUID") from None
        for name in ("hwid_limit", "ip_limit", "expires_in_days"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        expires_at = None
        if options["expires_in_days"] is not None:
            expires_at = timezone.now() + timedelta(days=options["expires_in_days"])
        try:
            license, plain = license_create(
                team=team,
                products=products,
                ip_limit=options["ip_limit"],
                hwid_limit=options["hwid_limit"],
                suspended=options["suspended"],
                expires_at=expires_at,
                actor=COMMAND_LINE,
            )
        except ValidationError as error:
            # Unknown products and other teams' products, each named.
            raise CommandError(" ".join(error.messages)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "licenseId": str(license.id),
                        "licenseKey": plain,
                        "teamId": str(team.id),
                        "productIds": sorted(str(pk) for pk in set(products)),
                        "hwidLimit": license.hwid_limit,
                        "ipLimit": license.ip_limit,
                        "expiresAt": iso_utc(license.expires_at) if license.expires_at else None,
                    }
                )
            )
        else:
            self.stdout.write(plain)

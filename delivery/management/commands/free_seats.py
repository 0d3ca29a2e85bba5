"""manage.py free_seats LICENSE_ID [--kind hwid|ip]"""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from delivery.services import KINDS, license_free_seats
from teams.models import License
from teams.services import COMMAND_LINE


class Command(BaseCommand):
    help = (
        "Free a license's seats (all, or only its devices or its IP addresses) and print how "
        "many were freed. A freed device takes a seat again on its next download."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("license_id")
        parser.add_argument(
            "--kind",
            choices=sorted(KINDS),
            help="Only hardware-id seats (hwid) or only IP seats (ip); default: both.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            license_id = uuid.UUID(options["license_id"])
        except ValueError:
            raise CommandError("LICENSE_ID must be a UUID") from None
        license = License.objects.filter(pk=license_id).first()
        if license is None:
            raise CommandError(f"No license {license_id}")
        kind = KINDS[options["kind"]] if options["kind"] else None
        freed = license_free_seats(license=license, kind=kind, actor=COMMAND_LINE)
        self.stdout.write(str(freed))

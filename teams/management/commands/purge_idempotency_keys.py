"""manage.py purge_idempotency_keys: delete Idempotency-Key records older than 24 hours.

Expired records are already ignored; this keeps the table small. Schedule it (hourly or
daily, see docs/operating.md)."""

from typing import Any

from django.core.management.base import BaseCommand

from teams.conditions import purge_expired


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than 24 hours and print how many."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{purge_expired()} expired idempotency keys deleted")

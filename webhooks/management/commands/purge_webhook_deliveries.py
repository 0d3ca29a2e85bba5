"""``manage.py purge_webhook_deliveries [--older-than-days N]``: drop the delivery log's
finished entries (delivered or failed) older than N days (30 by default), with their attempts,
and the events no delivery needs any more. Pending deliveries are never touched."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from webhooks.models import DeliveryState, WebhookDelivery, WebhookEvent


class Command(BaseCommand):
    help = "Delete finished webhook deliveries older than N days, and events left without any"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, default=30)

    def handle(self, *args: Any, older_than_days: int, **options: Any) -> None:
        if older_than_days < 1:
            self.stderr.write("--older-than-days must be at least 1")
            raise SystemExit(2)
        cutoff = timezone.now() - timedelta(days=older_than_days)
        with transaction.atomic():
            _, deleted = (
                WebhookDelivery.objects.exclude(state=DeliveryState.PENDING)
                .filter(updated_at__lt=cutoff)
                .delete()
            )
            events, _ = WebhookEvent.objects.filter(
                created_at__lt=cutoff, deliveries__isnull=True
            ).delete()
        deliveries = deleted.get(WebhookDelivery._meta.label, 0)
        self.stdout.write(f"{deliveries} deliveries and {events} events deleted")

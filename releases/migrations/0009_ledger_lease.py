"""Reservations of uploads in flight hold for a lease that their request renews, instead of
until a fixed grace period has passed. Entries already in flight keep the old rule: their
lease ends an hour after they were made."""

from datetime import timedelta

from django.db import migrations, models
from django.db.models import F


def lease_existing_uploads(apps, schema_editor):
    LedgerEntry = apps.get_model("releases", "LedgerEntry")
    LedgerEntry.objects.filter(state="UPLOADING").update(
        lease_expires_at=F("created_at") + timedelta(hours=1)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0008_name_control_characters"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="lease_expires_at",
            field=models.DateTimeField(
                blank=True,
                help_text="An UPLOADING entry's reservation holds until then.",
                null=True,
            ),
        ),
        migrations.RunPython(lease_existing_uploads, migrations.RunPython.noop),
    ]

"""Permissions for the webhook admin actions (rotate, test event, redeliver)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="webhookdelivery",
            options={
                "ordering": ["-created_at"],
                "permissions": [("redeliver", "Can redeliver a webhook delivery")],
                "verbose_name_plural": "webhook deliveries",
            },
        ),
        migrations.AlterModelOptions(
            name="webhookendpoint",
            options={
                "ordering": ["created_at", "id"],
                "permissions": [
                    ("rotate_webhook_secret", "Can rotate a webhook's secret"),
                    ("send_test_event", "Can send a webhook a test event"),
                ],
            },
        ),
    ]

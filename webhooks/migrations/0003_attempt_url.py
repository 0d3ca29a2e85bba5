"""Each attempt keeps the URL it was sent to, so the delivery log shows where a delivery went
even after the endpoint's URL changes. Attempts recorded before have none (empty)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_admin_permissions")]

    operations = [
        migrations.AddField(
            model_name="webhookattempt",
            name="url",
            field=models.URLField(blank=True, default="", max_length=500),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('teams', '0002_max_releases_per_product'),
    ]

    operations = [
        migrations.AddField(
            model_name='team',
            name='storage_used_bytes',
            field=models.BigIntegerField(default=0, editable=False, help_text="Bytes of the team's release files, kept in step with them by every write."),
        ),
    ]

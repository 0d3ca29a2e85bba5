"""StaleObject becomes the storage ledger (its rows are objects due for deletion), and each
team's stored bytes become a maintained total, filled here from its release files."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Sum


def fill_storage_used(apps, schema_editor):
    Team = apps.get_model("teams", "Team")
    ReleaseFile = apps.get_model("releases", "ReleaseFile")
    totals = ReleaseFile.objects.values("team").annotate(total=Sum("size"))
    for row in totals:
        Team.objects.filter(pk=row["team"]).update(storage_used_bytes=row["total"])


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0003_version_sort_key'),
        ('teams', '0003_storage_used_bytes'),
    ]

    operations = [
        migrations.RenameModel(old_name='StaleObject', new_name='LedgerEntry'),
        migrations.AlterModelOptions(
            name='ledgerentry',
            options={'ordering': ['created_at'], 'verbose_name_plural': 'ledger entries'},
        ),
        migrations.AddField(
            model_name='ledgerentry',
            name='state',
            field=models.CharField(choices=[('UPLOADING', 'Uploading'), ('DELETING', 'Deleting')], default='DELETING', max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='ledgerentry',
            name='size',
            field=models.BigIntegerField(default=0, help_text='Bytes reserved while UPLOADING.'),
        ),
        migrations.AddField(
            model_name='ledgerentry',
            name='team',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='ledger_entries', to='teams.team'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='attempts',
            field=models.PositiveIntegerField(default=0, help_text='Failed deletes so far.'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(fields=['team', 'state'], name='ledger_team_state'),
        ),
        migrations.RunPython(fill_storage_used, migrations.RunPython.noop),
    ]

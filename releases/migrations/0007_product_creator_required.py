"""A product always names its creator (the seed's ``ProductData`` requires the UUID): products
made before creators were recorded get the id of the unknown operator."""

import teams.models
from django.db import migrations, models


def backfill_creators(apps, schema_editor):
    Product = apps.get_model("releases", "Product")
    Product.objects.filter(created_by_user_id__isnull=True).update(
        created_by_user_id=teams.models.unknown_creator()
    )


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0006_licenses_open_their_teams_products'),
    ]

    operations = [
        migrations.RunPython(backfill_creators, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='product',
            name='created_by_user_id',
            field=models.UUIDField(default=teams.models.unknown_creator, editable=False, help_text="Who created it: the API key's id, or a stable id per operator (teams.models.operator_creator_id)."),
        ),
    ]

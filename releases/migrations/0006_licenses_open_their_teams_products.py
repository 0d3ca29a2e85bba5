"""Licenses made before they named products opened the whole team: each keeps that meaning
by being linked to every product its team has now."""

from django.db import migrations


def link_team_products(apps, schema_editor):
    License = apps.get_model("teams", "License")
    Product = apps.get_model("releases", "Product")
    Link = Product.licenses.through
    links = [
        Link(product_id=product_id, license_id=license_id)
        for license_id, team_id in License.objects.values_list("pk", "team_id")
        for product_id in Product.objects.filter(team_id=team_id).values_list("pk", flat=True)
    ]
    Link.objects.bulk_create(links, batch_size=1000, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("releases", "0005_product_licenses")]

    operations = [migrations.RunPython(link_team_products, migrations.RunPython.noop)]

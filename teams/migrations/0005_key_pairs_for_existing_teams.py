"""Every team made before key pairs existed gets one, sealed like any other."""

from django.db import migrations


def make_key_pairs(apps, schema_editor):
    from teams.keys import new_key_pair

    Team = apps.get_model("teams", "Team")
    TeamKeyPair = apps.get_model("teams", "TeamKeyPair")
    for team_id in Team.objects.filter(key_pair__isnull=True).values_list("pk", flat=True):
        made = new_key_pair(team_id)
        TeamKeyPair.objects.create(
            team_id=team_id,
            public_key_pem=made.public_key_pem,
            private_key_sealed=made.private_key_sealed,
        )


class Migration(migrations.Migration):
    dependencies = [("teams", "0004_key_pairs_and_license_limits")]

    operations = [migrations.RunPython(make_key_pairs, migrations.RunPython.noop)]

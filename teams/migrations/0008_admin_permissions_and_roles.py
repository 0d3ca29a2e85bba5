"""Permissions for the admin actions that "change" is too coarse for, and the three operator
roles (viewer, support, administrator) as groups; see teams/roles.py."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def make_roles(apps, schema_editor):
    from teams.roles import roles_sync

    # Django creates permissions after the last migration has run (post_migrate); on a new
    # database the roles need them now, so they are created here the same way.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(
            app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps
        )
        app_config.models_module = None
    roles_sync(apps)


class Migration(migrations.Migration):
    # Every app with admin pages, so each of their permissions exists for the roles.
    dependencies = [
        ("teams", "0007_idempotency_keys"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("axes", "0010_accessattemptexpiration"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("delivery", "0001_initial"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
        ("releases", "0008_name_control_characters"),
        ("sessions", "0001_initial"),
        ("webhooks", "0002_admin_permissions"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="apikey",
            options={
                "ordering": ["-created_at"],
                "permissions": [("revoke_apikey", "Can revoke an API key")],
                "verbose_name": "API key",
            },
        ),
        migrations.AlterModelOptions(
            name="license",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("suspend_license", "Can suspend and reinstate a license"),
                    ("free_seats", "Can free a license's seats"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="team",
            options={
                "ordering": ["name"],
                "permissions": [("soft_delete_team", "Can soft-delete a team")],
            },
        ),
        migrations.RunPython(make_roles, migrations.RunPython.noop),
    ]

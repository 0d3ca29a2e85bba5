"""manage.py sync_roles: create the viewer, support and administrator groups if missing and set
their permissions to the definition in ``teams.roles``.

``migrate`` made them; run this after an upgrade whose migrations add permissions (a new model
or admin action), so the administrator holds them and the viewer sees the new pages."""

from typing import Any

from django.core.management.base import BaseCommand

from teams.roles import roles_sync


class Command(BaseCommand):
    help = "Create or update the viewer, support and administrator groups (see docs/security.md)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, count in roles_sync().items():
            self.stdout.write(f"{name}: {count} permissions")

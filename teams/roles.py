"""The operator roles: three Django groups an operator account is put in.

- viewer: every ``view_*`` permission, so every admin page but no action, form or delete;
- support: the viewer's, and licenses made, suspended, reinstated and their seats freed;
- administrator: every permission there is.

A migration makes them; ``manage.py sync_roles`` brings them up to date after an upgrade adds
permissions (a new model's, a new admin action's). The three groups are managed: sync sets their
permissions back to this definition, so a different mix belongs in a group of another name.
"""

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db.models import Q, QuerySet

VIEWER = "viewer"
SUPPORT = "support"
ADMINISTRATOR = "administrator"

# Support's work on top of looking: a license made, suspended or reinstated, its seats freed
# (all at once from the license list, or one by one by deleting it in the seat list).
SUPPORT_PERMISSIONS = (
    "teams.add_license",
    "teams.suspend_license",
    "teams.free_seats",
    "delivery.delete_seat",
)


def _labelled(permissions: QuerySet, labels: tuple[str, ...]) -> QuerySet:
    wanted = Q(pk__in=[])
    for label in labels:
        app_label, codename = label.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return permissions.filter(wanted)


def role_permissions(permissions: QuerySet) -> dict[str, QuerySet]:
    """Each role's permissions, taken from ``permissions`` (all of them)."""
    viewing = permissions.filter(codename__startswith="view_")
    return {
        VIEWER: viewing,
        SUPPORT: viewing | _labelled(permissions, SUPPORT_PERMISSIONS),
        ADMINISTRATOR: permissions.all(),
    }


def roles_sync(apps: Apps = global_apps) -> dict[str, int]:
    """Create the three groups if missing and set their permissions; idempotent. ``apps`` is
    the migration's historical registry when a migration calls it. Answers each role's count
    of permissions."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    counts = {}
    for name, granted in role_permissions(permission_model.objects.all()).items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(granted)
        counts[name] = group.permissions.count()
    return counts

"""Team, API key and license write use cases, shared by the operator commands and the admin,
and the audit trail every write with an actor leaves: the one ``Actor`` type and the one writer
(``log_action``) that every write uses, releases, products, branches and webhooks included.

A write given an ``actor`` records one AuditLog row in the same transaction as the change:
``request_data`` holds the fields it set (model field names, never key material) and
``result`` the row as it stands afterwards (as it stood, for a delete). Without an actor
nothing is recorded: test fixtures and the demo seed. The operator commands record themselves
as ``operator:command-line``.
"""

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from rest_framework.request import Request

from lukittu.views import client_ip
from teams.keys import new_key_pair
from teams.models import (
    DEFAULT_MAX_BRANCHES_PER_PRODUCT,
    DEFAULT_MAX_RELEASES_PER_PRODUCT,
    MEGABYTE,
    ApiKey,
    AuditLog,
    License,
    Team,
)

# Never copied into the audit log: the digests stand in for the keys, and a license's hint is
# part of its key.
SECRET_FIELDS = frozenset({"digest", "key_digest", "key_hint"})

TEAM_EDITABLE = (
    "name",
    "file_uploads_enabled",
    "storage_limit_bytes",
    "max_releases_per_product",
    "max_branches_per_product",
    "seat_timeout_minutes",
)
API_KEY_EDITABLE = ("name",)
# ``products`` is a set of links, not a column: license_update handles it apart from these.
LICENSE_EDITABLE = ("suspended", "expires_at", "ip_limit", "hwid_limit")


@dataclass(frozen=True)
class Actor:
    """Who writes, as the audit log records it: an API key (labelled with its prefix), an
    operator (``operator:<username>``, no key) or the service itself (``system:<part>``).
    ``team`` is the team a release write is confined to: the key's own, or the team an operator
    writes in; the other writes find their team from the object they change."""

    label: str
    api_key: ApiKey | None = None
    ip_address: str | None = None
    user_agent: str = ""
    team: Team | None = None


# The operator commands (create_team, create_api_key, create_license, free_seats): run on the
# server by an operator, recorded as such in the audit log.
COMMAND_LINE = Actor(label="operator:command-line")


def api_actor(request: Request) -> Actor:
    """The API key of a Developer API request, confined to its team."""
    key: ApiKey = request.auth
    return Actor(
        label=key.prefix,
        api_key=key,
        ip_address=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        team=key.team,
    )


def jsonable(value: Any) -> Any:
    """``value`` with datetimes, UUIDs and decimals as the strings JSON fields store."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The row's stored fields by name (foreign keys as ids), without key material."""
    data = {
        field.name: field.value_from_object(obj)
        for field in obj._meta.concrete_fields
        if field.name not in SECRET_FIELDS
    }
    return jsonable(data)


def log_action(
    *,
    actor: Actor | None,
    action: str,
    target: models.Model,
    request_data: Mapping[str, Any] | None = None,
    result: Mapping[str, Any] | None = None,
    team: Team | None = None,
) -> None:
    """Record one write, the only writer of the audit log: ``actor`` did ``action``
    (``<target type>.<verb>``, as ``license.update``) to ``target``, a row not yet deleted, in
    ``team`` (by default the target's own). ``request_data`` is what the write set and
    ``result`` the row as it stands afterwards (as it stood, for a delete)."""
    if actor is None:
        return
    if team is None:
        team = target if isinstance(target, Team) else target.team
    AuditLog.objects.create(
        team=team,
        api_key=actor.api_key,
        actor=actor.label[:150],
        action=action,
        target_type=action.partition(".")[0],
        target_id=str(target.pk),
        ip_address=actor.ip_address,
        user_agent=actor.user_agent[:512],
        request_data=None if request_data is None else jsonable(dict(request_data)),
        result=None if result is None else jsonable(dict(result)),
    )


def apply_changes(
    obj: models.Model, changes: Mapping[str, Any], *, allowed: Iterable[str]
) -> dict[str, Any]:
    """Set the fields in ``changes`` on ``obj`` and return those whose value differs from
    before. Fields outside ``allowed`` are refused rather than ignored, so a caller never
    believes it changed something it did not."""
    refused = sorted(set(changes) - set(allowed))
    if refused:
        raise ValueError(f"{type(obj).__name__} fields that cannot be changed: {refused}")
    changed = {}
    for name, value in changes.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed[name] = value
    return changed


def save_changed(obj: models.Model, changed: Mapping[str, Any]) -> None:
    # Write only the changed columns: writing every field risks putting back values that a
    # concurrent write has just changed.
    fields = list(changed)
    if any(field.name == "updated_at" for field in obj._meta.concrete_fields):
        fields.append("updated_at")
    obj.save(update_fields=fields)


def update_recorded(
    stored: models.Model,
    changes: Mapping[str, Any],
    *,
    allowed: Iterable[str],
    action: str,
    actor: Actor | None,
    result_extra: Mapping[str, Any] | None = None,
) -> bool:
    """Apply the ``allowed`` fields of ``changes`` to ``stored`` (a row locked by the caller's
    transaction), save the columns that differ and record them as ``action``; nothing is
    written or recorded when no value differs. Whether anything changed."""
    changed = apply_changes(stored, changes, allowed=allowed)
    if not changed:
        return False
    save_changed(stored, changed)
    result = {**snapshot(stored), **(result_extra or {})}
    log_action(actor=actor, action=action, target=stored, request_data=changed, result=result)
    return True


def _locked(obj: models.Model) -> Any:
    """The stored row of ``obj``, locked until the transaction ends: changes are compared with
    committed values, not with whatever the caller loaded earlier."""
    return type(obj)._base_manager.select_for_update().get(pk=obj.pk)


# --- Teams -----------------------------------------------------------------------------------


@transaction.atomic
def team_create(
    *,
    name: str,
    file_uploads: bool = False,
    storage_limit_mb: int = 100,
    max_releases_per_product: int = DEFAULT_MAX_RELEASES_PER_PRODUCT,
    max_branches_per_product: int = DEFAULT_MAX_BRANCHES_PER_PRODUCT,
    seat_timeout_minutes: int | None = None,
    actor: Actor | None = None,
) -> Team:
    """A new team with its key pair. The key pair is made in the same transaction, so no team
    is ever seen without one (software is built with its public key from day one)."""
    if storage_limit_mb < 0:
        raise ValueError("storage limit must not be negative")
    _check_seat_timeout(seat_timeout_minutes)
    fields = {
        "name": name,
        "file_uploads_enabled": file_uploads,
        "storage_limit_bytes": storage_limit_mb * MEGABYTE,
        "max_releases_per_product": max_releases_per_product,
        "max_branches_per_product": max_branches_per_product,
        "seat_timeout_minutes": seat_timeout_minutes,
    }
    team = Team.objects.create(**fields)
    # The private key is sealed, and only the public key is ever shown: neither goes into
    # the audit log (it records the team's own fields).
    new_key_pair(team.pk).save(force_insert=True)
    log_action(
        actor=actor, action="team.create", target=team, request_data=fields, result=snapshot(team)
    )
    return team


@transaction.atomic
def team_update(*, team: Team, changes: Mapping[str, Any], actor: Actor | None = None) -> Team:
    """Change a team's name, upload flag, limits or seat timeout (``TEAM_EDITABLE``). Returns
    the team as stored; writes (and records) nothing when no value differs."""
    if changes.get("storage_limit_bytes", 0) < 0:
        raise ValueError("storage limit must not be negative")
    _check_seat_timeout(changes.get("seat_timeout_minutes"))
    stored = _locked(team)
    update_recorded(
        stored,
        changes,
        allowed=TEAM_EDITABLE,
        action="team.update",
        actor=actor,
    )
    return stored


def _check_seat_timeout(minutes: int | None) -> None:
    # The column would take 0, which would make every seat idle at once: "no timeout" is None.
    if minutes is not None and minutes < 1:
        raise ValueError("seat timeout must be at least 1 minute (or None: no timeout)")


@transaction.atomic
def team_soft_delete(*, team: Team, actor: Actor | None = None) -> bool:
    """Mark the team deleted (its keys stop working). False if it already was."""
    now = timezone.now()
    if not Team.objects.filter(pk=team.pk, deleted_at__isnull=True).update(deleted_at=now):
        return False
    stored = Team.objects.get(pk=team.pk)
    changed, result = {"deleted_at": now}, snapshot(stored)
    log_action(
        actor=actor, action="team.soft_delete", target=stored, request_data=changed, result=result
    )
    return True


# --- API keys --------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(
    *,
    team: Team,
    name: str = "",
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plain text, which is shown once and never stored."""
    if expires_in_days is not None:
        if expires_in_days < 1:
            raise ValueError("expiry must be at least one day")
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    key, plain = ApiKey.build(team=team, name=name, expires_at=expires_at)
    key.save()
    fields = {"name": name, "expires_at": expires_at}
    result = {**snapshot(key), "prefix": key.prefix}
    log_action(actor=actor, action="api_key.create", target=key, request_data=fields, result=result)
    return key, plain


@transaction.atomic
def api_key_update(
    *, key: ApiKey, changes: Mapping[str, Any], actor: Actor | None = None
) -> ApiKey:
    """Rename a key (``API_KEY_EDITABLE``); its team, expiry and secret never change."""
    stored = _locked(key)
    update_recorded(
        stored,
        changes,
        allowed=API_KEY_EDITABLE,
        action="api_key.update",
        actor=actor,
        result_extra={"prefix": stored.prefix},
    )
    return stored


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor | None = None) -> bool:
    """Revoke the key. False if it already was."""
    now = timezone.now()
    if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
        return False
    stored = ApiKey.objects.select_related("team").get(pk=key.pk)
    changed, result = {"revoked_at": now}, {**snapshot(stored), "prefix": stored.prefix}
    log_action(
        actor=actor, action="api_key.revoke", target=stored, request_data=changed, result=result
    )
    return True


# --- Licenses --------------------------------------------------------------------------------


def license_products(team: Team, products: Iterable[models.Model | uuid.UUID | str]) -> list[str]:
    """The ids (sorted strings, as the audit log records them) of ``products``, each given as a
    product or its id, after checking that every one is a product of ``team``: a license
    opens only its own team's products. Raises ValidationError naming each one that is not.

    Read from the database, not from the instances given, so a hand-built or stale product
    cannot pass for one of the team's."""
    # Product is declared by releases, the floor above: reached through the relation it
    # declares (License.products), not imported.
    Product = License._meta.get_field("products").related_model
    wanted: set[uuid.UUID] = set()
    for item in products:
        raw = item.pk if isinstance(item, Product) else item
        try:
            wanted.add(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except ValueError:
            raise ValidationError(
                f"{raw!r} is not a product id (a UUID).", code="invalid"
            ) from None
    found = {
        pk: (name, team_id)
        for pk, name, team_id in Product.objects.filter(pk__in=wanted).values_list(
            "pk", "name", "team_id"
        )
    }
    problems = [f"No product {pk}." for pk in sorted(wanted - set(found), key=str)]
    problems += [
        f"{name} ({pk}) is a product of another team: a license opens only products of "
        f"its own team, {team}."
        for pk, (name, team_id) in sorted(found.items(), key=lambda item: str(item[0]))
        if team_id != team.pk
    ]
    if problems:
        raise ValidationError(problems, code="product_team")
    return sorted(str(pk) for pk in wanted)


def _product_ids_of(license: License) -> list[str]:
    return sorted(str(pk) for pk in license.products.values_list("pk", flat=True))


def _check_limits(values: Mapping[str, Any]) -> None:
    # The model's validators say the same, but services are called without a form; the
    # database's check constraint would answer with an IntegrityError instead.
    errors = {
        name: f"{name} must be at least 1, or empty for no limit."
        for name in ("ip_limit", "hwid_limit")
        if values.get(name) is not None and values[name] < 1
    }
    if errors:
        raise ValidationError(errors, code="min_value")


@transaction.atomic
def license_create(
    *,
    team: Team,
    products: Iterable[models.Model | uuid.UUID | str] = (),
    ip_limit: int | None = None,
    hwid_limit: int | None = None,
    suspended: bool = False,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[License, str]:
    """A new license and its key, shown once and stored only as a digest. It opens the given
    products (each the team's, else ValidationError) and no other; ``ip_limit`` and
    ``hwid_limit`` (None: unlimited) bound how many addresses and devices hold a seat at once.
    """
    product_ids = license_products(team, products)
    _check_limits({"ip_limit": ip_limit, "hwid_limit": hwid_limit})
    plain = License.generate_key()
    license = License(
        team=team,
        suspended=suspended,
        expires_at=expires_at,
        ip_limit=ip_limit,
        hwid_limit=hwid_limit,
    )
    license.set_key(plain)
    license.save()
    license.products.set(product_ids)
    log_action(
        actor=actor,
        action="license.create",
        target=license,
        request_data={
            "products": product_ids,
            "ip_limit": ip_limit,
            "hwid_limit": hwid_limit,
            "suspended": suspended,
            "expires_at": expires_at,
        },
        result={**snapshot(license), "products": product_ids},
    )
    return license, plain


@transaction.atomic
def license_update(
    *, license: License, changes: Mapping[str, Any], actor: Actor | None = None
) -> License:
    """Suspend or reinstate a license, set its expiry or limits (``LICENSE_EDITABLE``), or set
    the products it opens (``products``: products or ids, each the team's, replacing the
    previous set). One audit entry with what differs; nothing is written or recorded when
    nothing does."""
    stored = _locked(license)
    columns = {name: value for name, value in changes.items() if name != "products"}
    _check_limits(columns)
    changed = apply_changes(stored, columns, allowed=LICENSE_EDITABLE)
    before = _product_ids_of(stored)
    after = license_products(stored.team, changes["products"]) if "products" in changes else before
    if changed:
        save_changed(stored, changed)
    if after != before:
        stored.products.set(after)
        changed["products"] = after
    if not changed:
        return stored
    result = {**snapshot(stored), "products": after}
    log_action(
        actor=actor, action="license.update", target=stored, request_data=changed, result=result
    )
    return stored


@transaction.atomic
def license_delete(*, license: License, actor: Actor | None = None) -> None:
    """Delete a license; releases it was allowed to download lose it."""
    stored = _locked(license)
    result = {**snapshot(stored), "products": _product_ids_of(stored)}
    log_action(actor=actor, action="license.delete", target=stored, result=result)
    stored.delete()

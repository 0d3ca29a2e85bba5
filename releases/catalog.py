"""Product and branch write use cases, shared by the admin and the Developer API, each
recorded in the audit log like the team, key and license writes in ``teams.services``.

A product's team and a branch's product are chosen at creation and never change (the models
refuse it too), so the update services do not accept them.
"""

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from lukittu.api import ApiError, Code
from releases import shapes
from releases.models import Branch, Product, Release
from teams.conditions import Conditions
from teams.models import Team, operator_creator_id, unknown_creator
from teams.services import Actor, log_action, snapshot, update_recorded
from webhooks import events as webhook_events

PRODUCT_EDITABLE = ("name", "url")
# A product's URL through the API: http(s), a host, no spaces or control characters (the
# OpenAPI pattern too). Explicit ranges, not \s: JSON Schema's (JavaScript's) whitespace and
# Python's differ (U+0085, U+FEFF), and both must read the pattern alike.
URL_PATTERN = r"^https?://[^\x00-\x20\x7f/?#@]+([/?#][^\x00-\x20\x7f]*)?$"
BRANCH_EDITABLE = ("name",)


# The row as stored, locked until the transaction ends (only the row itself: ``of`` keeps the
# team's row, which every release write locks, free).
def _locked_product(product: Product) -> Product:
    return Product.objects.select_for_update(of=("self",)).select_related("team").get(pk=product.pk)


def _locked_branch(branch: Branch) -> Branch:
    return (
        Branch.objects.select_for_update(of=("self",))
        .select_related("product__team")
        .get(pk=branch.pk)
    )


def product_payload(product: Product) -> dict[str, Any]:
    """The seed's ``ProductData``."""
    return shapes.ProductData.dump(product)


def branch_payload(branch: Branch) -> dict[str, Any]:
    return shapes.BranchData.dump(branch)


def creator_id(actor: Actor | None) -> uuid.UUID:
    """``createdByUserId``: the API key's id, or a stable id per operator."""
    if actor is None:
        return unknown_creator()
    if actor.api_key is not None:
        return actor.api_key.pk
    return operator_creator_id(actor.label)


def branch_name_taken() -> ApiError:
    return ApiError(409, Code.BAD_REQUEST, "The product already has a branch with this name")


def in_use(what: str) -> ApiError:
    return ApiError(
        409,
        Code.BAD_REQUEST,
        f"The {what} has releases: delete or move them first, then the {what}",
    )


@transaction.atomic
def product_create(
    *, team: Team, name: str, url: str | None = None, actor: Actor | None = None
) -> Product:
    product = Product.objects.create(
        team=team, name=name, url=url, created_by_user_id=creator_id(actor)
    )
    fields, result = {"team": team.pk, "name": name, "url": url}, snapshot(product)
    log_action(
        actor=actor, action="product.create", target=product, request_data=fields, result=result
    )
    webhook_events.emit(team, "product.created", product_payload(product))
    return product


@transaction.atomic
def product_update(
    *,
    product: Product,
    changes: Mapping[str, Any],
    actor: Actor | None = None,
    conditions: Conditions | None = None,
) -> Product:
    """Rename a product or change its URL. Returns it as stored; writes, records and sends
    nothing when no value differs."""
    stored = _locked_product(product)
    (conditions or Conditions()).check_current(lambda: product_payload(stored))
    changed = update_recorded(
        stored,
        changes,
        allowed=PRODUCT_EDITABLE,
        action="product.update",
        actor=actor,
    )
    if changed:
        webhook_events.emit(stored.team, "product.updated", product_payload(stored))
    return stored


@transaction.atomic
def product_delete(
    *, product: Product, actor: Actor | None = None, conditions: Conditions | None = None
) -> None:
    """Delete a product and its branches. Its releases protect it (409): delete those first."""
    stored = _locked_product(product)
    (conditions or Conditions()).check_current(lambda: product_payload(stored))
    if Release.objects.filter(product=stored).exists():
        raise in_use("product")
    webhook_events.emit(stored.team, "product.deleted", product_payload(stored))
    log_action(actor=actor, action="product.delete", target=stored, result=snapshot(stored))
    Branch.objects.filter(product=stored).delete()
    stored.delete()


def too_many_branches() -> ApiError:
    return ApiError(403, Code.FORBIDDEN, "Max branches per product reached")


@transaction.atomic
def branch_create(*, product: Product, name: str, actor: Actor | None = None) -> Branch:
    """A new branch. The product's row lock orders creates, so the team's branch limit holds
    under concurrent requests; a taken name is a 409."""
    product = _locked_product(product)
    if Branch.objects.filter(product=product).count() >= product.team.max_branches_per_product:
        raise too_many_branches()
    try:
        with transaction.atomic():
            branch = Branch.objects.create(product=product, name=name)
    except IntegrityError:
        raise branch_name_taken() from None
    fields, result = {"product": product.pk, "name": name}, snapshot(branch)
    log_action(
        actor=actor, action="branch.create", target=branch, request_data=fields, result=result
    )
    webhook_events.emit(product.team, "branch.created", branch_payload(branch))
    return branch


@transaction.atomic
def branch_update(
    *,
    branch: Branch,
    changes: Mapping[str, Any],
    actor: Actor | None = None,
    conditions: Conditions | None = None,
) -> Branch:
    """Rename a branch. Returns it as stored; writes, records and sends nothing when the name
    is unchanged."""
    stored = _locked_branch(branch)
    (conditions or Conditions()).check_current(lambda: branch_payload(stored))
    try:
        with transaction.atomic():
            changed = update_recorded(
                stored,
                changes,
                allowed=BRANCH_EDITABLE,
                action="branch.update",
                actor=actor,
            )
    except IntegrityError:
        raise branch_name_taken() from None
    if changed:
        webhook_events.emit(stored.product.team, "branch.updated", branch_payload(stored))
    return stored


@transaction.atomic
def branch_delete(
    *, branch: Branch, actor: Actor | None = None, conditions: Conditions | None = None
) -> None:
    """Delete a branch. Its releases protect it (409): delete those first."""
    stored = _locked_branch(branch)
    (conditions or Conditions()).check_current(lambda: branch_payload(stored))
    if Release.objects.filter(branch=stored).exists():
        raise in_use("branch")
    webhook_events.emit(stored.team, "branch.deleted", branch_payload(stored))
    log_action(actor=actor, action="branch.delete", target=stored, result=snapshot(stored))
    stored.delete()

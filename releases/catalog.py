"""Product and branch write use cases (the admin's; the API only reads them), each recorded
in the audit log like the team, key and license writes in ``teams.services``.

A product's team and a branch's product are chosen at creation and never change (the models
refuse it too), so the update services do not accept them.
"""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from releases.models import Branch, Product
from teams.models import Team
from teams.services import AuditActor, log_action, snapshot, update_recorded

PRODUCT_EDITABLE = ("name", "url")
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


@transaction.atomic
def product_create(
    *, team: Team, name: str, url: str | None = None, actor: AuditActor | None = None
) -> Product:
    product = Product.objects.create(team=team, name=name, url=url)
    log_action(
        actor=actor,
        team=team,
        action="product.create",
        target_id=product.pk,
        request_data={"team": team.pk, "name": name, "url": url},
        result=snapshot(product),
    )
    return product


@transaction.atomic
def product_update(
    *, product: Product, changes: Mapping[str, Any], actor: AuditActor | None = None
) -> Product:
    """Rename a product or change its URL. Returns it as stored; writes (and records) nothing
    when no value differs."""
    stored = _locked_product(product)
    update_recorded(
        stored,
        changes,
        allowed=PRODUCT_EDITABLE,
        action="product.update",
        team=stored.team,
        actor=actor,
    )
    return stored


@transaction.atomic
def product_delete(*, product: Product, actor: AuditActor | None = None) -> None:
    """Delete a product. Its branches and releases protect it: delete those first."""
    stored = _locked_product(product)
    result = snapshot(stored)
    stored.delete()
    log_action(
        actor=actor,
        team=stored.team,
        action="product.delete",
        target_id=product.pk,
        request_data=None,
        result=result,
    )


@transaction.atomic
def branch_create(*, product: Product, name: str, actor: AuditActor | None = None) -> Branch:
    branch = Branch.objects.create(product=product, name=name)
    log_action(
        actor=actor,
        team=product.team,
        action="branch.create",
        target_id=branch.pk,
        request_data={"product": product.pk, "name": name},
        result=snapshot(branch),
    )
    return branch


@transaction.atomic
def branch_update(
    *, branch: Branch, changes: Mapping[str, Any], actor: AuditActor | None = None
) -> Branch:
    """Rename a branch. Returns it as stored; writes (and records) nothing when the name is
    unchanged."""
    stored = _locked_branch(branch)
    update_recorded(
        stored,
        changes,
        allowed=BRANCH_EDITABLE,
        action="branch.update",
        team=stored.product.team,
        actor=actor,
    )
    return stored


@transaction.atomic
def branch_delete(*, branch: Branch, actor: AuditActor | None = None) -> None:
    """Delete a branch. Its releases protect it: delete those first."""
    stored = _locked_branch(branch)
    result = snapshot(stored)
    stored.delete()
    log_action(
        actor=actor,
        team=stored.product.team,
        action="branch.delete",
        target_id=branch.pk,
        request_data=None,
        result=result,
    )

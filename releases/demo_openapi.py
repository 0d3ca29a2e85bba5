"""Swagger UI's "Try it out", prefilled for ``make run``'s demo team.

A drf-spectacular postprocessing hook, active only when ``DEMO_SUMMARY_FILE`` names the demo
summary that ``manage.py seed_demo --reuse`` keeps (``make run``: ``var/demo.json``; the
setting is refused unless DEBUG is on). Every id in a path or query is then the demo team's,
the Client API's license key is the demo license's, and each body is one the service accepts
as it comes:

- an update sends the object as it is now (read when the page loads), so it renames nothing,
  and a release keeps its version, status and place as latest;
- a create sends a name or version made for this page load, so it does not collide;
- a delete targets the newest object made after the demo was seeded (with Try it out on the
  create operation, say), else the "Try It Out" product's own release, branch or the product
  itself (``ensure_try_it_out``, which ``make run`` calls): never the demo's other objects;
- a webhook's own operations and a redelivery target the newest webhook and delivery made
  (the demo has none: make one with Create Webhook and Test Webhook, then reload the page).

The API key is never put in the document: "Authorize" takes the one ``make run`` printed.
"""

import copy
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.utils import timezone

from releases.models import Branch, Product, Release
from teams.keys import key_pair_for
from teams.models import Team
from webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("lukittu.demo")

# The webhook a create prefills: the discard port, so a test event is refused at once (the
# delivery log shows the failed attempt) and nothing leaves the machine.
DEMO_WEBHOOK_URL = "http://127.0.0.1:9/demo-receiver"
# The demo team's product for trying deletes, with a branch and a draft release of its own,
# and an empty one for Delete Product (a product's releases protect it; deleting "Try It Out"
# itself would take its branch along before Delete Branch is tried).
TRY_IT_OUT = "Try It Out"
TRY_IT_OUT_EMPTY = "Try It Out (empty)"
TRY_IT_OUT_BRANCH = "try-it-out"
TRY_IT_OUT_VERSION = "0.0.1-try"


def ensure_try_it_out(*, team_id: str) -> None:
    """The "Try It Out" product with its branch and release, and the empty one, each made
    again if a delete removed it: what Swagger UI's prefilled deletes target. Apart from Demo
    App, so trying a delete never touches what the README's examples use."""
    team = Team.objects.get(pk=team_id)
    product = _product_named(team, TRY_IT_OUT)
    Branch.objects.get_or_create(product=product, name=TRY_IT_OUT_BRANCH)
    if not Release.objects.filter(product=product, version=TRY_IT_OUT_VERSION).exists():
        Release.objects.create(
            team=team, product=product, version=TRY_IT_OUT_VERSION, status="DRAFT"
        )
    _product_named(team, TRY_IT_OUT_EMPTY)


def _product_named(team: Team, name: str) -> Product:
    product = Product.objects.filter(team=team, name=name).order_by("created_at").first()
    return product or Product.objects.create(team=team, name=name)


@dataclass
class Prefill:
    """What one operation gets: parameter examples by name, and a request body example."""

    parameters: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    note: str = ""


def load_summary(path: str | None) -> dict[str, Any] | None:
    """The demo summary, or None when there is none to use (no setting, no file, or a file
    that is not one: the document is then served without demo values)."""
    if not path:
        return None
    try:
        summary = json.loads(Path(path).read_text())
        summary["teamId"], summary["releases"][1]["id"], summary["licenseKey"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        logger.warning("DEMO_SUMMARY_FILE %s is not a demo summary; Swagger UI not prefilled", path)
        return None
    return summary


def prefill_demo(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """The postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``)."""
    summary = load_summary(settings.DEMO_SUMMARY_FILE)
    if summary is None:
        return result
    team = Team.objects.filter(pk=summary["teamId"]).first()
    if team is None:
        return result
    prefills = DemoPrefills(team, summary).by_operation()
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and operation.get("operationId") in prefills:
                apply(result, operation, prefills[operation["operationId"]])
    return result


def apply(document: dict[str, Any], operation: dict[str, Any], prefill: Prefill) -> None:
    """Put ``prefill`` into ``operation``. Parameters and bodies may be shared with other
    operations (components, or the same dict reused), so each changed one is a copy."""
    parameters = []
    for parameter in operation.get("parameters", []):
        resolved = _resolve(document, parameter)
        if resolved.get("name") in prefill.parameters:
            resolved = copy.deepcopy(resolved)
            resolved["example"] = prefill.parameters[resolved["name"]]
            resolved.get("schema", {}).pop("example", None)
            resolved.pop("examples", None)
            parameters.append(resolved)
        else:
            parameters.append(parameter)
    operation["parameters"] = parameters
    if prefill.body is not None and "requestBody" in operation:
        body = copy.deepcopy(_resolve(document, operation["requestBody"]))
        for media_type, content in body.get("content", {}).items():
            content.pop("examples", None)
            if media_type == "multipart/form-data":
                content["schema"]["properties"]["data"]["example"] = prefill.body
            else:
                content["example"] = prefill.body
        operation["requestBody"] = body
    if prefill.note:
        operation["description"] = f"{operation.get('description', '')}\n\n{prefill.note}".strip()


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    reference = item.get("$ref")
    if not reference:
        return item
    target: Any = document
    for part in reference.removeprefix("#/").split("/"):
        target = target[part]
    return target


def session_key_hex(public_key_pem: str) -> str:
    """A new session key, as the classloader sends it: 32 random bytes, RSA-OAEP (SHA-1)
    encrypted with the team's public key, in hex. Each key is accepted once (the replay
    guard), so each page load gets its own."""
    public_key = serialization.load_pem_public_key(public_key_pem.encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    sha1 = hashes.SHA1()  # noqa: S303 - the classloader's protocol, not a choice made here
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None)
    return public_key.encrypt(os.urandom(32), oaep).hex()


class DemoPrefills:
    """The values, read from the database when the document is made."""

    def __init__(self, team: Team, summary: dict[str, Any]) -> None:
        self.team = team
        self.summary = summary
        self.stamp = timezone.now().strftime("%Y%m%d%H%M%S")
        product = summary["products"][0]
        self.product_id = product["id"]
        self.branch_id = product["branches"][0]["id"]
        self.release_id = summary["releases"][1]["id"]
        # Creates go to "Try It Out" (while it exists), so Demo App stays as the README has it.
        try_it_out = Product.objects.filter(team=team, name=TRY_IT_OUT).first()
        self.scratch_product_id = str(try_it_out.pk) if try_it_out else self.product_id
        seeded_releases = {item["id"] for item in summary["releases"]}
        seeded_products = {item["id"] for item in summary["products"]}
        seeded_branches = {b["id"] for item in summary["products"] for b in item["branches"]}
        self.made_release = _newest_id(
            Release.objects.filter(team=team).exclude(pk__in=seeded_releases)
        )
        # One without releases first: they protect a product from deletion (409).
        made_products = Product.objects.filter(team=team).exclude(pk__in=seeded_products)
        self.made_product = _newest_id(made_products.filter(releases__isnull=True)) or _newest_id(
            made_products
        )
        self.made_branch = _newest_id(
            Branch.objects.filter(product__team=team).exclude(pk__in=seeded_branches)
        )
        self.webhook = WebhookEndpoint.objects.filter(team=team).order_by("-created_at").first()

    def by_operation(self) -> dict[str, Prefill]:
        builders: dict[str, Callable[[], Prefill]] = {
            **self._releases(),
            **self._catalog(),
            **self._webhooks(),
            **self._client(),
        }
        return {operation: build() for operation, build in builders.items()}

    def team_only(self, **parameters: Any) -> Prefill:
        return Prefill({"teamId": str(self.team.pk), **parameters})

    def made(self, kind: str, object_id: str | None, name: str, **parameters: Any) -> Prefill:
        """A write on an object made after the seed (the "Try It Out" ones included): never
        one of the demo's others."""
        if object_id is None:
            return Prefill(
                {"teamId": str(self.team.pk), **parameters},
                note=f"*Demo:* make a {kind} first (Try it out on {name}), then reload this "
                f"page: its id is prefilled here. The demo's own {kind}s are left alone.",
            )
        return Prefill(
            {"teamId": str(self.team.pk), **parameters, f"{kind}Id": object_id},
            note=f"*Demo:* prefilled with the newest {kind} made after the demo was seeded "
            f"({TRY_IT_OUT!r}'s, until you make one); the next `make run` makes those "
            "again.",
        )

    # --- Releases -------------------------------------------------------------------------------

    def _releases(self) -> dict[str, Callable[[], Prefill]]:
        release = {"releaseId": self.release_id}
        return {
            "listReleases": lambda: self.team_only(productId=self.product_id),
            "createRelease": lambda: Prefill(
                {"teamId": str(self.team.pk)}, body=self._new_release()
            ),
            "getRelease": lambda: self.team_only(**release),
            "updateRelease": lambda: Prefill(
                {"teamId": str(self.team.pk), **release}, body=self._release_as_is()
            ),
            "deleteRelease": lambda: self.made("release", self.made_release, "Create Release"),
        }

    def _new_release(self) -> dict[str, Any]:
        return {
            "version": f"0.0.1-try.{self.stamp}",
            "productId": self.scratch_product_id,
            "status": "DRAFT",
            "setAsLatest": False,
            "keepExistingFile": True,
            "branchId": None,
            "metadata": [{"key": "channel", "value": "try"}],
            "licenseIds": [],
        }

    def _release_as_is(self) -> dict[str, Any] | None:
        """The demo release's update body with every field as stored now: sending it changes
        nothing but the audit log and ``updatedAt``. None once the release is deleted (the
        generic example stays)."""
        release = Release.objects.filter(pk=self.release_id).first()
        if release is None:
            return None
        return {
            "version": release.version,
            "productId": str(release.product_id),
            "status": release.status,
            "setAsLatest": release.latest,
            "keepExistingFile": True,
            "branchId": str(release.branch_id) if release.branch_id else None,
            "metadata": [
                {"key": m.key, "value": m.value, "locked": m.locked} for m in release.metadata.all()
            ],
            "licenseIds": [str(pk) for pk in release.licenses.values_list("pk", flat=True)],
        }

    # --- Products and branches ----------------------------------------------------------------

    def _catalog(self) -> dict[str, Callable[[], Prefill]]:
        product = {"productId": self.product_id}
        branch = {"branchId": self.branch_id}
        return {
            "listProducts": lambda: self.team_only(),
            "createProduct": lambda: Prefill(
                {"teamId": str(self.team.pk)}, body={"name": f"Try App {self.stamp}"}
            ),
            "getProduct": lambda: self.team_only(**product),
            "updateProduct": lambda: Prefill(
                {"teamId": str(self.team.pk), **product}, body=self._product_as_is()
            ),
            "deleteProduct": lambda: self.made("product", self.made_product, "Create Product"),
            "listBranches": lambda: self.team_only(**product),
            "createBranch": lambda: Prefill(
                {"teamId": str(self.team.pk), "productId": self.scratch_product_id},
                body={"name": f"try-{self.stamp}"},
            ),
            "getBranch": lambda: self.team_only(**branch),
            "updateBranch": lambda: Prefill(
                {"teamId": str(self.team.pk), **branch},
                body=self._branch_as_is(),
            ),
            "deleteBranch": lambda: self.made("branch", self.made_branch, "Create Branch"),
        }

    def _product_as_is(self) -> dict[str, Any] | None:
        product = Product.objects.filter(pk=self.product_id).first()
        return {"name": product.name, "url": product.url} if product else None

    def _branch_as_is(self) -> dict[str, Any] | None:
        branch = Branch.objects.filter(pk=self.branch_id).first()
        return {"name": branch.name} if branch else None

    # --- Webhooks -------------------------------------------------------------------------------

    def _webhooks(self) -> dict[str, Callable[[], Prefill]]:
        webhook_id = str(self.webhook.pk) if self.webhook else None
        delivery = (
            WebhookDelivery.objects.filter(endpoint=self.webhook).order_by("-created_at").first()
            if self.webhook
            else None
        )

        def on_webhook(**parameters: Any) -> Prefill:
            return self.made("webhook", webhook_id, "Create Webhook", **parameters)

        def redeliver() -> Prefill:
            if delivery is None:
                return on_webhook() if webhook_id is None else self._no_delivery(webhook_id)
            return on_webhook(deliveryId=str(delivery.pk))

        return {
            "listWebhooks": lambda: self.team_only(),
            "createWebhook": lambda: Prefill(
                {"teamId": str(self.team.pk)},
                body={"url": DEMO_WEBHOOK_URL, "events": ["release.deleted"], "active": True},
            ),
            "getWebhook": on_webhook,
            "updateWebhook": lambda: self._webhook_as_is(on_webhook()),
            "deleteWebhook": on_webhook,
            "rotateWebhookSecret": lambda: self._with_body(on_webhook(), {"gracePeriodHours": 24}),
            "testWebhook": on_webhook,
            "listWebhookDeliveries": on_webhook,
            "redeliverWebhookDelivery": redeliver,
        }

    def _no_delivery(self, webhook_id: str) -> Prefill:
        return Prefill(
            {"teamId": str(self.team.pk), "webhookId": webhook_id},
            note="*Demo:* send the webhook a test event first (Try it out on Test Webhook), "
            "then reload this page: the newest delivery's id is prefilled here.",
        )

    def _webhook_as_is(self, prefill: Prefill) -> Prefill:
        if self.webhook is None:
            return prefill
        return self._with_body(
            prefill,
            {"url": self.webhook.url, "events": self.webhook.events, "active": self.webhook.active},
        )

    @staticmethod
    def _with_body(prefill: Prefill, body: dict[str, Any]) -> Prefill:
        prefill.body = body
        return prefill

    # --- The Client API -------------------------------------------------------------------------

    def _client(self) -> dict[str, Callable[[], Prefill]]:
        licensed = {"licenseKey": self.summary["licenseKey"], "productId": self.product_id}
        return {
            "getLatestRelease": lambda: self.team_only(**licensed),
            "downloadRelease": lambda: self.team_only(**licensed),
            "getClassloader": lambda: self.team_only(
                **licensed,
                sessionKey=session_key_hex(key_pair_for(self.team).public_key_pem),
            ),
        }


def _newest_id(queryset: Any) -> str | None:
    pk = queryset.order_by("-created_at").values_list("pk", flat=True).first()
    return str(pk) if pk is not None else None

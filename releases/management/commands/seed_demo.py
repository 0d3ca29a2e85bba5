"""manage.py seed_demo [--json] [--no-file-uploads] [--storage-limit-mb N] [--reuse FILE]
[--try-it-out]

With ``--reuse FILE`` (what ``make run`` passes), the summary of the demo team, its API key
and a license key included, is kept in FILE (readable by its owner only), and later runs print
it again instead of making another team, for as long as that team, key and license still work.
With ``--try-it-out`` (``make run`` too), the team also has the "Try It Out" product, branch
and release that Swagger UI's prefilled deletes target (releases/demo_openapi.py), made again
if a delete removed them.
"""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from releases.demo_openapi import ensure_try_it_out
from releases.models import Branch, Product, Release, ReleaseStatus
from releases.services import ReleaseChanges, release_update
from releases.uploads import upload_from_bytes
from teams.authentication import key_for
from teams.keys import key_pair_for, public_key_base64
from teams.models import License
from teams.services import Actor, api_key_create, license_create, team_create


def public_key_fields(public_key_pem: str) -> dict[str, str]:
    """The team's public key as the summary carries it: bare base64 and PEM."""
    return {"publicKey": public_key_base64(public_key_pem), "publicKeyPem": public_key_pem}


def demo_jar() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nMain-Class: com.example.demo.Main\r\n\r\n",
        )
        archive.writestr("com/example/demo/Main.class", b"\xca\xfe\xba\xbe demo")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Create a new demo team with an API key, products, branches, licenses and releases."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument("--no-file-uploads", action="store_true")
        parser.add_argument("--storage-limit-mb", type=int, default=100)
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the service runs, for the printed curl example.",
        )
        parser.add_argument(
            "--try-it-out",
            action="store_true",
            help="Also make the objects Swagger UI's prefilled deletes target, if missing.",
        )
        parser.add_argument(
            "--reuse",
            metavar="FILE",
            help="Keep the demo team's summary in FILE and reuse that team while it works.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["storage_limit_mb"] < 0:
            raise CommandError("--storage-limit-mb must not be negative")
        reuse = Path(options["reuse"]) if options["reuse"] else None
        summary = self.reusable(reuse) if reuse else None
        if summary is None:
            with transaction.atomic():
                summary = self.seed(
                    file_uploads=not options["no_file_uploads"],
                    storage_limit_mb=options["storage_limit_mb"],
                )
            if reuse:
                reuse.parent.mkdir(parents=True, exist_ok=True)
                reuse.write_text(json.dumps(summary))
                reuse.chmod(0o600)
        if options["try_it_out"]:
            ensure_try_it_out(team_id=summary["teamId"])
        if reuse:
            # A build to upload in the README's examples (`-F file=@var/demo-app.jar`).
            (reuse.parent / "demo-app.jar").write_bytes(demo_jar())
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(self.readable(summary, base_url=options["base_url"].rstrip("/")))

    @staticmethod
    def reusable(path: Path) -> dict[str, Any] | None:
        """The summary kept in ``path``, if its team's key still opens its team's URLs and its
        license key is still one of the team's licenses. A summary from before licenses and
        key pairs were printed lacks them, and is not reused: a new demo team is made."""
        try:
            summary = json.loads(path.read_text())
            key = key_for(summary["apiKey"])
            license = License.objects.filter(
                pk=summary["licenseId"], team_id=summary["teamId"]
            ).first()
            plain_license = summary["licenseKey"]
        # ValidationError: an id in the file that is not a UUID.
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None
        if key is None or str(key.team_id) != summary.get("teamId"):
            return None
        if (
            license is None
            or not isinstance(plain_license, str)
            or not license.matches(plain_license)
        ):
            return None
        # The public key as stored now, not as the file says: it is what software must embed.
        summary.update(public_key_fields(key_pair_for(key.team).public_key_pem))
        return summary

    def seed(self, *, file_uploads: bool, storage_limit_mb: int) -> dict[str, Any]:
        team = team_create(
            name="Demo Team", file_uploads=file_uploads, storage_limit_mb=storage_limit_mb
        )
        _, plain_key = api_key_create(team=team, name="demo")
        products = []
        for name in ("Demo App", "Other App"):
            product = Product.objects.create(team=team, name=name)
            branch = Branch.objects.create(product=product, name="beta")
            products.append((product, branch))
        demo_app, beta = products[0]
        # Each opens Demo App (not Other App: a license opens only the products it names).
        licenses = [license_create(team=team, products=[demo_app]) for _ in range(3)]
        first_license, first_license_key = licenses[0]

        def release(version: str, status: str, branch: Branch | None) -> Release:
            return Release.objects.create(
                team=team, product=demo_app, branch=branch, version=version, status=status
            )

        stable = release("1.0.0", ReleaseStatus.DRAFT, None)
        draft = release("1.1.0", ReleaseStatus.DRAFT, None)
        beta_release = release("2.0.0-beta", ReleaseStatus.DRAFT, beta)
        # Published through the same use case as the API, so the demo data obeys every rule.
        operator = Actor(team=team, label="operator:seed_demo")
        for target, upload in (
            (stable, upload_from_bytes("demo-app-1.0.0.jar", demo_jar())),
            (beta_release, None),
        ):
            release_update(
                actor=operator,
                release_id=target.pk,
                changes=ReleaseChanges(
                    version=target.version,
                    product_id=demo_app.pk,
                    status=ReleaseStatus.PUBLISHED,
                    set_as_latest=True,
                    keep_existing_file=True,
                    branch_id=target.branch_id,
                    metadata=[
                        {
                            "key": "channel",
                            "value": "stable" if target is stable else "beta",
                            "locked": False,
                        }
                    ],
                    license_ids=[],
                ),
                upload=upload,
                max_file_bytes=settings.MAX_RELEASE_FILE_MB * 1024 * 1024,
                request_data=None,
            )
        releases = [
            Release.objects.select_related("file").get(pk=r.pk)
            for r in (stable, draft, beta_release)
        ]
        return {
            "teamId": str(team.id),
            "apiKey": plain_key,
            "products": [
                {
                    "id": str(product.id),
                    "name": product.name,
                    "branches": [{"id": str(branch.id), "name": branch.name}],
                }
                for product, branch in products
            ],
            "releases": [
                {
                    "id": str(r.id),
                    "version": r.version,
                    "status": r.status,
                    "latest": r.latest,
                    "productId": str(r.product_id),
                    "branchId": str(r.branch_id) if r.branch_id else None,
                    "hasFile": r.current_file is not None,
                }
                for r in releases
            ],
            "licenseIds": [str(license.id) for license, _ in licenses],
            # The first license, whose key is shown (the others' keys are not kept anywhere).
            "licenseId": str(first_license.id),
            "licenseKey": first_license_key,
            **public_key_fields(key_pair_for(team).public_key_pem),
        }

    @staticmethod
    def readable(summary: dict[str, Any], *, base_url: str) -> str:
        product = summary["products"][0]
        draft = summary["releases"][1]
        data = {
            "version": "1.1.0",
            "productId": product["id"],
            "status": "PUBLISHED",
            "setAsLatest": True,
            "keepExistingFile": True,
            "branchId": None,
            "metadata": [{"key": "channel", "value": "stable"}],
            "licenseIds": [],
        }
        lines = [
            "Demo team:",
            f"  Team id:  {summary['teamId']}",
            f"  API key:  {summary['apiKey']}   (the service keeps only its digest)",
            "",
            "Products:",
        ]
        for item in summary["products"]:
            branches = ", ".join(f"{b['name']} {b['id']}" for b in item["branches"])
            lines.append(f"  {item['name']}: {item['id']} (branches: {branches})")
        lines += ["", "Releases of Demo App:"]
        for item in summary["releases"]:
            flags = " latest" if item["latest"] else ""
            flags += " with file" if item["hasFile"] else ""
            lines.append(f"  {item['version']:<11} {item['status']:<10} {item['id']}{flags}")
        lines += [
            "",
            f"Licenses (each opens Demo App): {', '.join(summary['licenseIds'])}",
            f"  License key:  {summary['licenseKey']}   (license {summary['licenseId']})",
            "",
            "Team public key, to embed in the software (PEM: manage.py team_public_key TEAM_ID):",
            f"  {summary['publicKey']}",
            "",
        ]
        lines += [
            f"Start at {base_url}/ : the API docs (Swagger UI: Authorize with the API key above,",
            "then Try it out, prefilled with the demo team's ids), the admin and the probes.",
            "",
            "Publish the 1.1.0 draft (it has no build yet) as the latest release:",
            "",
            f"  curl -sS -X PUT {base_url}/api/v1/dev/teams/{summary['teamId']}"
            f"/releases/{draft['id']} \\",
            f"    -H 'Authorization: Bearer {summary['apiKey']}' \\",
            f"    -F 'data={json.dumps(data)}'",
            "",
            "Add  -F 'file=@var/demo-app.jar'  (the demo build) to upload a build with it.",
            "",
            "Paste this line to run the README's examples as written:",
            "",
            f"  export BASE={base_url} API={base_url}/api/v1/dev/teams/{summary['teamId']}"
            f" TEAM={summary['teamId']} KEY={summary['apiKey']}"
            f" PRODUCT={product['id']} RELEASE={draft['id']} LICENSE={summary['licenseKey']}",
        ]
        return "\n".join(lines)

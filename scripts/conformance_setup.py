"""For scripts/conformance.sh: writes the seeded ids (WORK/seed.json, from ``seed_demo
--json``) as schemathesis dictionaries, and creates releases through the API for the delete
operation to remove.

For the Client API it also sets up, in the seeded team, a product of its own (which the
Developer API operations are not given, so they leave it alone) with a published latest
release carrying a JAR on the main line and on a branch, both uploaded through the API, and a
license without seat limits that opens it; the license key, the product, its version and
branch become dictionaries, and the team's public key goes to WORK/team-public-key.pem for the
hooks to make session keys with. Usage: conformance_setup.py BASE_URL WORK_DIR"""

import io
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
DELETABLE = 5
CLIENT_VERSION = "1.0.0"
CLIENT_BRANCH = "beta"


def write_dictionary(path: Path, values: list[str]) -> None:
    path.write_text("".join(f'"{value}"\n' for value in values))


def client_jar() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nMain-Class: com.example.client.Main\r\n\r\n",
        )
        archive.writestr("com/example/client/Main.class", os.urandom(70_000))
    return buffer.getvalue()


def create_release(base: str, team: str, key: str, data: dict[str, Any], file: Any = None) -> str:
    files: dict[str, Any] = {"data": (None, json.dumps(data))}
    if file is not None:
        files["file"] = file
    response = requests.post(
        f"{base}/api/v1/dev/teams/{team}/releases",
        headers={"Authorization": f"Bearer {key}"},
        files=files,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["data"]["id"]


def client_product(base: str, work: Path, team: str, key: str) -> None:
    """The Client API's product, release files, license and the team's public key."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()  # the settings come from conformance.sh's environment, as the server's do
    from releases.models import Branch, Product
    from teams.keys import key_pair_for
    from teams.models import Team
    from teams.services import license_create

    owner = Team.objects.get(pk=team)
    product = Product.objects.create(team=owner, name="Conformance Client App")
    branch = Branch.objects.create(product=product, name=CLIENT_BRANCH)
    jar = client_jar()
    for branch_id in (None, str(branch.pk)):
        data = {
            "version": CLIENT_VERSION,
            "productId": str(product.pk),
            "status": "PUBLISHED",
            "setAsLatest": True,
            "branchId": branch_id,
        }
        create_release(base, team, key, data, ("client-app.jar", jar, "application/java-archive"))
    _, license_key = license_create(team=owner, products=[product])
    (work / "team-public-key.pem").write_text(key_pair_for(owner).public_key_pem)
    write_dictionary(work / "client-license-keys.dict", [license_key])
    write_dictionary(work / "client-product-ids.dict", [str(product.pk)])
    write_dictionary(work / "client-versions.dict", [CLIENT_VERSION])
    write_dictionary(work / "client-branches.dict", [CLIENT_BRANCH])


def main(base: str, work: Path) -> None:
    seed = json.loads((work / "seed.json").read_text())
    team, key = seed["teamId"], seed["apiKey"]
    product = seed["products"][0]["id"]
    deletable = []
    for number in range(DELETABLE):
        data = {"version": f"9.9.{number}-delete-me", "productId": product, "status": "DRAFT"}
        deletable.append(create_release(base, team, key, data))
    write_dictionary(work / "release-ids.dict", [release["id"] for release in seed["releases"]])
    write_dictionary(work / "deletable-release-ids.dict", deletable)
    write_dictionary(work / "product-ids.dict", [product["id"] for product in seed["products"]])
    write_dictionary(
        work / "branch-ids.dict",
        [branch["id"] for product in seed["products"] for branch in product["branches"]],
    )
    write_dictionary(work / "license-ids.dict", seed["licenseIds"])
    client_product(base, work, team, key)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

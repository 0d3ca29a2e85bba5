"""For scripts/conformance.sh: writes the seeded ids (WORK/seed.json, from ``seed_demo
--json``) as schemathesis dictionaries, and creates releases through the API for the delete
operation to remove. Usage: conformance_setup.py BASE_URL WORK_DIR"""

import json
import sys
from pathlib import Path

import requests

DELETABLE = 5


def write_dictionary(path: Path, values: list[str]) -> None:
    path.write_text("".join(f'"{value}"\n' for value in values))


def main(base: str, work: Path) -> None:
    seed = json.loads((work / "seed.json").read_text())
    team, key = seed["teamId"], seed["apiKey"]
    product = seed["products"][0]["id"]
    deletable = []
    for number in range(DELETABLE):
        data = {"version": f"9.9.{number}-delete-me", "productId": product, "status": "DRAFT"}
        response = requests.post(
            f"{base}/api/v1/dev/teams/{team}/releases",
            headers={"Authorization": f"Bearer {key}"},
            files={"data": (None, json.dumps(data))},
            timeout=30,
        )
        response.raise_for_status()
        deletable.append(response.json()["data"]["id"])
    write_dictionary(work / "release-ids.dict", [release["id"] for release in seed["releases"]])
    write_dictionary(work / "deletable-release-ids.dict", deletable)
    write_dictionary(work / "product-ids.dict", [product["id"] for product in seed["products"]])
    write_dictionary(
        work / "branch-ids.dict",
        [branch["id"] for product in seed["products"] for branch in product["branches"]],
    )
    write_dictionary(work / "license-ids.dict", seed["licenseIds"])


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

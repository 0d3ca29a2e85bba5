"""The operator commands: create_team, create_api_key and seed_demo."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from lukittu.env import load_env_file
from releases.models import Branch, Product, Release, ReleaseFile, ReleaseStatus
from teams.keys import public_key_base64
from teams.models import ApiKey, AuditLog, License, Team, TeamKeyPair
from teams.services import team_create
from tests.helpers import put_release, update_data

MIB = 1024 * 1024


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def release_of(team):
    product = Product.objects.create(team=team, name="Keyed App")
    return Release.objects.create(team=team, product=product, version="1.0.0")


# --- create_team ---------------------------------------------------------------------------


def test_create_team_prints_its_id(db):
    output = run("create_team", "Acme")

    team_id = uuid.UUID(output.strip())
    team = Team.objects.get(pk=team_id)
    assert team.name == "Acme"
    assert team.file_uploads_enabled is False
    assert team.storage_limit_bytes == 100 * MIB


def test_create_team_stores_file_uploads_and_storage_limit(db):
    output = run("create_team", "Acme", "--file-uploads", "--storage-limit-mb", "250", "--json")

    printed = json.loads(output)
    assert printed == {
        "teamId": printed["teamId"],
        "name": "Acme",
        "fileUploads": True,
        "storageLimitBytes": 250 * MIB,
    }
    team = Team.objects.get(pk=uuid.UUID(printed["teamId"]))
    assert (team.name, team.file_uploads_enabled, team.storage_limit_bytes) == (
        "Acme",
        True,
        250 * MIB,
    )


def test_create_team_refuses_a_negative_storage_limit(db):
    with pytest.raises(CommandError, match="storage-limit-mb"):
        run("create_team", "Acme", "--storage-limit-mb", "-1")
    assert not Team.objects.exists()


# --- create_api_key ------------------------------------------------------------------------


def test_create_api_key_prints_a_key_that_authenticates(db, client):
    team = team_create(name="Acme")
    release = release_of(team)

    plain = run("create_api_key", str(team.id)).strip()

    response = put_release(
        client, team.id, release.id, key=plain, data=update_data(release, version="1.0.1")
    )
    assert response.status_code == 200, response.json()
    release.refresh_from_db()
    assert release.version == "1.0.1"


def test_create_api_key_stores_only_a_digest(db):
    team = team_create(name="Acme")

    plain = run("create_api_key", str(team.id), "--name", "ci").strip()

    row = ApiKey.objects.filter(team=team).values().get()
    assert row["digest"] == hashlib.sha256(plain.encode()).hexdigest()
    assert plain.startswith(f"{ApiKey.PREFIX}{row['stem']}_")
    secret = plain.rsplit("_", 1)[-1]
    for column, value in row.items():
        assert plain not in str(value), column
        assert secret not in str(value), column
    assert row["expires_at"] is None


def test_create_api_key_expiry_and_json(db):
    team = team_create(name="Acme")

    printed = json.loads(run("create_api_key", str(team.id), "--expires-in-days", "7", "--json"))

    key = ApiKey.objects.get(team=team)
    assert printed == {
        "id": str(key.id),
        "teamId": str(team.id),
        "apiKey": printed["apiKey"],
        "prefix": key.prefix,
        "expiresAt": printed["expiresAt"],
    }
    assert key.matches(printed["apiKey"])
    assert abs(key.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert printed["expiresAt"].endswith("Z")


def test_create_api_key_for_an_unknown_team_fails(db):
    with pytest.raises(CommandError, match="No team"):
        run("create_api_key", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="UUID"):
        run("create_api_key", "not-a-uuid")
    assert not ApiKey.objects.exists()


# --- seed_demo -----------------------------------------------------------------------------


def seed(*args):
    output = run("seed_demo", "--json", *args)
    return json.loads(output)  # fails unless the output is exactly one JSON document


def test_seed_demo_json_describes_the_demo_data(db):
    summary = seed()

    assert set(summary) == {
        "teamId",
        "apiKey",
        "products",
        "releases",
        "licenseIds",
        "licenseId",
        "licenseKey",
        "publicKey",
        "publicKeyPem",
    }
    team = Team.objects.get(pk=summary["teamId"])
    assert team.file_uploads_enabled is True
    assert team.storage_limit_bytes == 100 * MIB

    products = {product["name"]: product for product in summary["products"]}
    assert set(products) == {"Demo App", "Other App"}
    for name, product in products.items():
        assert set(product) == {"id", "name", "branches"}
        stored = Product.objects.get(pk=product["id"])
        assert (stored.name, stored.team_id) == (name, team.id)
        [branch] = product["branches"]
        assert set(branch) == {"id", "name"} and branch["name"] == "beta"
        assert Branch.objects.get(pk=branch["id"]).product_id == stored.id
    demo_app = products["Demo App"]["id"]
    beta = products["Demo App"]["branches"][0]["id"]

    releases = {release["version"]: release for release in summary["releases"]}
    assert releases == {
        "1.0.0": {
            "id": releases["1.0.0"]["id"],
            "version": "1.0.0",
            "status": "PUBLISHED",
            "latest": True,
            "productId": demo_app,
            "branchId": None,
            "hasFile": True,
        },
        "1.1.0": {
            "id": releases["1.1.0"]["id"],
            "version": "1.1.0",
            "status": "DRAFT",
            "latest": False,
            "productId": demo_app,
            "branchId": None,
            "hasFile": False,
        },
        "2.0.0-beta": {
            "id": releases["2.0.0-beta"]["id"],
            "version": "2.0.0-beta",
            "status": "PUBLISHED",
            "latest": True,
            "productId": demo_app,
            "branchId": beta,
            "hasFile": False,
        },
    }
    for release in summary["releases"]:
        stored = Release.objects.get(pk=release["id"], team=team)
        assert (stored.version, stored.status, stored.latest) == (
            release["version"],
            release["status"],
            release["latest"],
        )
        assert (str(stored.product_id), str(stored.branch_id) if stored.branch_id else None) == (
            release["productId"],
            release["branchId"],
        )
    assert Release.objects.filter(team=team).count() == 3

    stored_file = ReleaseFile.objects.get(release_id=releases["1.0.0"]["id"])
    assert stored_file.team_id == team.id
    with default_storage.open(stored_file.key, "rb") as handle:
        content = handle.read()
    assert len(content) == stored_file.size > 0
    assert hashlib.sha256(content).hexdigest() == stored_file.sha256

    assert len(summary["licenseIds"]) == 3
    assert set(summary["licenseIds"]) == {
        str(pk) for pk in License.objects.filter(team=team).values_list("pk", flat=True)
    }
    # Each license opens Demo App and only it; the first one's key is printed.
    for license in License.objects.filter(team=team):
        assert [str(pk) for pk in license.products.values_list("pk", flat=True)] == [demo_app]
    assert summary["licenseId"] == summary["licenseIds"][0]
    assert License.objects.get(pk=summary["licenseId"]).matches(summary["licenseKey"])

    pair = TeamKeyPair.objects.get(team=team)
    assert summary["publicKeyPem"] == pair.public_key_pem
    assert summary["publicKey"] == public_key_base64(pair.public_key_pem)
    assert "\n" not in summary["publicKey"] and len(summary["publicKey"]) > 300


def test_seed_demo_makes_a_new_team_each_run(db):
    first = seed()
    second = seed()

    assert first["teamId"] != second["teamId"]
    assert first["apiKey"] != second["apiKey"]
    assert Team.objects.count() == 2
    assert ApiKey.objects.filter(team_id=first["teamId"]).count() == 1
    assert ApiKey.objects.filter(team_id=second["teamId"]).count() == 1


def test_seed_demo_options(db):
    summary = seed("--no-file-uploads", "--storage-limit-mb", "5")

    team = Team.objects.get(pk=summary["teamId"])
    assert team.file_uploads_enabled is False
    assert team.storage_limit_bytes == 5 * MIB
    # The stored demo file is seeded by the operator, which needs no paid feature.
    assert {r["version"]: r["hasFile"] for r in summary["releases"]}["1.0.0"] is True


def test_seed_demo_key_works_against_the_api(db, client):
    summary = seed()
    draft = next(r for r in summary["releases"] if r["version"] == "1.1.0")
    release = Release.objects.get(pk=draft["id"])

    response = put_release(
        client,
        summary["teamId"],
        draft["id"],
        key=summary["apiKey"],
        data=update_data(release, status="PUBLISHED", setAsLatest=True),
    )

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["latest"] is True
    release.refresh_from_db()
    assert (release.status, release.latest) == (ReleaseStatus.PUBLISHED, True)
    previous = next(r for r in summary["releases"] if r["version"] == "1.0.0")
    assert Release.objects.get(pk=previous["id"]).latest is False


def test_seed_demo_readable_output_shows_the_key_and_a_curl_command(db):
    output = run("seed_demo")

    team = Team.objects.get()
    [key] = ApiKey.objects.filter(team=team)
    plain = next(word for word in output.split() if word.startswith(ApiKey.PREFIX))
    assert key.matches(plain)
    assert str(team.id) in output
    curl = [line for line in output.splitlines() if "curl " in line]
    assert len(curl) == 1
    assert "-X PUT" in curl[0] and f"/api/v1/dev/teams/{team.id}/releases/" in curl[0]
    assert f"Authorization: Bearer {plain}" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


def test_seed_demo_readable_output_shows_a_license_key_and_the_public_key(db):
    output = run("seed_demo")

    team = Team.objects.get()
    [line] = [line for line in output.splitlines() if "License key:" in line]
    plain = line.split()[2]
    assert any(license.matches(plain) for license in License.objects.filter(team=team))
    bare = public_key_base64(TeamKeyPair.objects.get(team=team).public_key_pem)
    assert f"  {bare}" in output.splitlines()


def test_seed_demo_ends_with_exports_that_make_the_readme_examples_run(db, client):
    output = run("seed_demo", "--base-url", "http://127.0.0.1:8001")
    export = output.strip().splitlines()[-1].split()
    assert export[0] == "export"
    values = dict(item.split("=", 1) for item in export[1:])
    assert set(values) == {"BASE", "API", "TEAM", "KEY", "PRODUCT", "RELEASE", "LICENSE"}
    team = Team.objects.get()
    assert values["TEAM"] == str(team.id)
    assert values["BASE"] == "http://127.0.0.1:8001"
    assert values["API"] == f"http://127.0.0.1:8001/api/v1/dev/teams/{team.id}"
    assert Product.objects.get(pk=values["PRODUCT"]).name == "Demo App"
    # The Client API's examples: the demo license opens the demo product, whose latest (until
    # the update below makes 1.1.0 latest) is 1.0.0 with its build.
    query = {
        "licenseKey": values["LICENSE"],
        "productId": values["PRODUCT"],
        "hardwareIdentifier": "my-machine-0001",
    }
    latest = client.get(f"/api/v1/client/teams/{values['TEAM']}/releases/latest", query)
    assert latest.status_code == 200, latest.json()
    assert latest.json()["data"]["version"] == "1.0.0"
    # RELEASE is the 1.1.0 draft, so the README's "Update (all fields)" (version 1.1.0) runs.
    assert Release.objects.get(pk=values["RELEASE"]).version == "1.1.0"
    data = {
        "version": "1.1.0",
        "productId": values["PRODUCT"],
        "status": "PUBLISHED",
        "setAsLatest": True,
        "keepExistingFile": True,
        "branchId": None,
        "metadata": [],
        "licenseIds": [],
    }
    response = put_release(client, values["TEAM"], values["RELEASE"], key=values["KEY"], data=data)
    assert response.status_code == 200, response.json()


def test_seed_demo_reuse_keeps_one_demo_team_across_runs(db, tmp_path):
    kept = tmp_path / "demo.json"
    first = seed("--reuse", str(kept))
    second = seed("--reuse", str(kept))
    assert second == first
    assert Team.objects.count() == 1
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    # The build the README's examples upload, beside it.
    with zipfile.ZipFile(tmp_path / "demo-app.jar") as jar:
        assert "META-INF/MANIFEST.MF" in jar.namelist()

    # The license key and the public key are kept and printed again on every run.
    assert {"licenseKey", "licenseId", "publicKey", "publicKeyPem"} <= set(second)
    assert License.objects.get(pk=second["licenseId"]).matches(second["licenseKey"])

    # Once its key no longer works (revoked, team deleted), a new team is made.
    ApiKey.objects.update(revoked_at=timezone.now())
    third = seed("--reuse", str(kept))
    assert third["teamId"] != first["teamId"]
    assert Team.objects.count() == 2
    assert json.loads(kept.read_text())["teamId"] == third["teamId"]


def test_seed_demo_reuse_needs_the_license_key_it_prints(db, tmp_path):
    kept = tmp_path / "demo.json"
    first = seed("--reuse", str(kept))

    # A summary written before license keys were printed: a new team, with one.
    older = {name: value for name, value in first.items() if name not in ("licenseKey",)}
    kept.write_text(json.dumps(older))
    second = seed("--reuse", str(kept))
    assert second["teamId"] != first["teamId"]
    assert License.objects.get(pk=second["licenseId"]).matches(second["licenseKey"])

    # The printed license deleted: it would print a key that opens nothing.
    License.objects.filter(pk=second["licenseId"]).delete()
    third = seed("--reuse", str(kept))
    assert third["teamId"] not in (first["teamId"], second["teamId"])
    assert json.loads(kept.read_text())["licenseKey"] == third["licenseKey"]

    # A license id that is not a UUID is a damaged file like any other.
    kept.write_text(json.dumps({**third, "licenseId": "not-a-uuid"}))
    assert seed("--reuse", str(kept))["teamId"] != third["teamId"]


def test_seed_demo_reuse_survives_a_damaged_file(db, tmp_path):
    kept = tmp_path / "demo.json"
    kept.write_text("not json")
    summary = seed("--reuse", str(kept))
    assert json.loads(kept.read_text()) == summary


def test_the_env_file_fills_only_unset_variables(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n\nDEBUG=true\nexport LOG_LEVEL='WARNING'\nALREADY=file\n")
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.setenv("ALREADY", "environment")
    load_env_file(env_file)
    assert os.environ["DEBUG"] == "true"
    assert os.environ["LOG_LEVEL"] == "WARNING"
    assert os.environ["ALREADY"] == "environment"
    load_env_file(tmp_path / "missing")  # no file: nothing to do
    env_file.write_text("not a setting\n")
    with pytest.raises(ImproperlyConfigured, match=r"\.env:1"):
        load_env_file(env_file)


def test_operator_commands_run_as_written_with_the_env_file_make_run_writes(tmp_path):
    """`manage.py` reads the .env beside it (`make run` writes DEBUG=true there): with no
    SECRET_KEY in the environment, a command stops without it and runs with it."""
    project = Path(__file__).resolve().parent.parent
    shutil.copy(project / "manage.py", tmp_path / "manage.py")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE")
    }
    env.update(PYTHONPATH=str(project), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    def check():
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    without = check()
    assert without.returncode != 0
    assert "SECRET_KEY must be set" in without.stderr
    (tmp_path / ".env").write_text("DEBUG=true\n")
    with_env_file = check()
    assert with_env_file.returncode == 0, with_env_file.stderr


def test_operator_commands_are_recorded_in_the_audit_log(db):
    team_id = run("create_team", "Audited").strip()
    run("create_api_key", team_id)
    actions = list(
        AuditLog.objects.filter(team_id=team_id).order_by("id").values_list("action", "actor")
    )
    assert actions == [
        ("team.create", "operator:command-line"),
        ("api_key.create", "operator:command-line"),
    ]

"""Fixtures: a team with an API key and a release world, and an outsider team with its own."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from releases.models import Branch, Product, Release, ReleaseStatus
from teams.models import License, Team
from teams.services import api_key_create, license_create, team_create


@dataclass
class World:
    """One team's objects: the key (plain text), a product with a branch, releases, licenses."""

    team: Team
    key: str
    product: Product
    other_product: Product
    branch: Branch
    release: Release
    other_release: Release
    licenses: list[License] = field(default_factory=list)


def build_world(name: str, *, file_uploads: bool = True, storage_limit_mb: int = 100) -> World:
    team = team_create(name=name, file_uploads=file_uploads, storage_limit_mb=storage_limit_mb)
    _, key = api_key_create(team=team, name="tests")
    product = Product.objects.create(team=team, name=f"{name} App")
    other_product = Product.objects.create(team=team, name=f"{name} Other")
    branch = Branch.objects.create(product=product, name="beta")
    release = Release.objects.create(
        team=team, product=product, version="1.0.0", status=ReleaseStatus.DRAFT
    )
    other_release = Release.objects.create(
        team=team, product=product, version="0.9.0", status=ReleaseStatus.PUBLISHED, latest=True
    )
    licenses = [license_create(team=team)[0] for _ in range(3)]
    return World(team, key, product, other_product, branch, release, other_release, licenses)


@pytest.fixture(autouse=True)
def _isolated_media_and_cache(settings: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()


@pytest.fixture
def world(db: None) -> World:
    return build_world("Owner")


@pytest.fixture
def outsider(db: None) -> World:
    return build_world("Outsider")


@pytest.fixture
def client() -> Client:
    return Client()

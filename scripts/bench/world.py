"""The benchmark's data: teams, keys, products and releases, written through the project's own
Django code in the benchmark's process (the servers see it once committed)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from scripts.bench.base import FAKE_FILE_SIZE, RELEASES_PER_PRODUCT
from scripts.bench.wire import Target

LICENSES = 30


def published_releases(team: Any, name: str, releases: int) -> tuple[list[Any], list[Any]]:
    """Products of RELEASES_PER_PRODUCT releases each and their ``releases`` published
    releases (not saved yet); each product's last release is its latest, as in real use."""
    from releases.models import Product, Release, ReleaseStatus, version_sort_key

    products = [
        Product.objects.create(team=team, name=f"{name} {number}")
        for number in range(max(1, -(-releases // RELEASES_PER_PRODUCT)))
    ]
    rows: list[Release] = []
    for product in products:
        count = min(RELEASES_PER_PRODUCT, releases - len(rows))
        for index in range(count):
            version = f"1.{index // 10}.{index % 10}"
            rows.append(
                Release(
                    team=team,
                    product=product,
                    version=version,
                    version_sort_key=version_sort_key(version),
                    status=ReleaseStatus.PUBLISHED,
                    latest=index == count - 1,
                )
            )
    return products, rows


class World:
    """Teams, keys, products and releases, written through the project's own Django code."""

    def __init__(self) -> None:
        import django

        django.setup()

    def team(self, name: str, releases: int) -> list[Target]:
        from releases.models import Product, Release, ReleaseStatus
        from teams.services import api_key_create, team_create

        team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
        _, key = api_key_create(team=team, name="bench")
        product = Product.objects.create(team=team, name=f"{name} App")
        targets = []
        for index in range(releases):
            release = Release.objects.create(
                team=team, product=product, version=f"1.0.{index}", status=ReleaseStatus.PUBLISHED
            )
            targets.append(
                Target(str(team.pk), key, str(release.pk), str(product.pk), release.version)
            )
        return targets

    def populated_team(self, name: str, releases: int) -> Target:
        """A team with ``releases`` releases that each have a file (rows only: the objects need
        not exist), its stored-bytes total in step, and LICENSES licenses. Returns a release
        in the middle to update (not latest, so licenses may be attached to it)."""
        from django.db import transaction
        from django.db.models import Sum

        from releases.models import Release, ReleaseFile
        from releases.storage import release_file_key
        from teams.models import Team
        from teams.services import api_key_create, license_create, team_create

        with transaction.atomic():
            team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
            _, key = api_key_create(team=team, name="bench")
            license_ids = [str(license_create(team=team)[0].pk) for _ in range(LICENSES)]
            _, rows = published_releases(team, name, releases)
            Release.objects.bulk_create(rows, batch_size=2000)
            digest = hashlib.sha256(b"not stored").hexdigest()
            md5 = hashlib.md5(b"not stored", usedforsecurity=False).hexdigest()
            files = []
            for release in rows:
                file_id = uuid.uuid4()
                files.append(
                    ReleaseFile(
                        id=file_id,
                        team=team,
                        release=release,
                        key=release_file_key(
                            team_id=team.pk, release_id=release.pk, file_id=file_id, extension="bin"
                        ),
                        size=FAKE_FILE_SIZE,
                        name="build.bin",
                        checksum=md5,
                        sha256=digest,
                    )
                )
            ReleaseFile.objects.bulk_create(files, batch_size=2000)
            total = ReleaseFile.objects.filter(team=team).aggregate(total=Sum("size"))["total"]
            Team.objects.filter(pk=team.pk).update(storage_used_bytes=total)
        middle = rows[len(rows) // 2]
        assert not middle.latest
        return Target(
            str(team.pk), key, str(middle.pk), str(middle.product_id), middle.version, license_ids
        )

    @staticmethod
    def team_only(name: str) -> Any:
        """A bare team (no key, no releases)."""
        from teams.services import team_create

        return team_create(name=name, file_uploads=False, storage_limit_mb=100)

    def release_count(self, target: Target) -> int:
        from releases.models import Release

        return Release.objects.filter(team_id=target.team_id).count()

    def close(self) -> None:
        from django.db import connections

        connections.close_all()

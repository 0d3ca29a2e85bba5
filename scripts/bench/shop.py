"""The Client API rows' data and request: a team that sells a product to a licensed device,
and a classloader download timed, decrypted and compared."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scripts.bench.base import FAKE_FILE_SIZE, HOST, REQUEST_TIMEOUT, MeasureError
from scripts.bench.harness import Bench
from scripts.bench.wire import Content, Reply
from scripts.bench.world import published_releases

DELIVERY_HWID = "bench-machine-000001"
WARM_UP_VERSION = "0.0.1"


@dataclass
class ClientShop:
    """A team selling a product (the first of its products) through the Client API: the
    license key, the team's public key as a loader has it, and the delivered build."""

    team_id: str
    product_id: str
    license_key: str
    public_key_pem: str
    content: Content

    def path(self, endpoint: str, **extra: str) -> str:
        from urllib.parse import urlencode

        query = {
            "licenseKey": self.license_key,
            "productId": self.product_id,
            "hardwareIdentifier": DELIVERY_HWID,
            **extra,
        }
        return f"/api/v1/client/teams/{self.team_id}/{endpoint}?{urlencode(query)}"

    def classloader(self, **extra: str) -> tuple[str, Any]:
        """A classloader URL with a new session key, and the loader that can read its answer
        (tests/loader.py, written from the protocol rather than from the service's code)."""
        from tests.loader import Loader

        loader = Loader(self.public_key_pem)
        return self.path(
            "verification/classloader", sessionKey=loader.session_key_hex(), **extra
        ), loader


def delivery_shop(
    bench: Bench,
    name: str,
    content: Content,
    *,
    on_s3: bool,
    releases: int = 1,
    licenses: int = 1,
    warm_up: Content | None = None,
) -> ClientShop:
    """A team of ``releases`` releases with file rows (100 a product, each product's last one
    its latest) and ``licenses`` licenses that all open its first product. That product's
    latest release carries ``content``, stored for real (and ``warm_up``, stored as release
    WARM_UP_VERSION of the same line). The measured license has seat limits, with the
    measured device's seats already taken, so every check a customer meets is made."""
    from django.db import transaction

    from releases.models import Release, ReleaseStatus, version_sort_key
    from teams.keys import key_pair_for
    from teams.services import team_create

    with transaction.atomic():
        team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
        products, rows = published_releases(team, name, releases)
        if warm_up is not None:
            rows.append(
                Release(
                    team=team,
                    product=products[0],
                    version=WARM_UP_VERSION,
                    version_sort_key=version_sort_key(WARM_UP_VERSION),
                    status=ReleaseStatus.PUBLISHED,
                )
            )
        Release.objects.bulk_create(rows, batch_size=2000)
        delivered = next(row for row in rows if row.product_id == products[0].pk and row.latest)
        stored = release_files(team, rows, delivered, content, warm_up)
        license_key = licenses_for(team, products[0], licenses)
        public_key_pem = key_pair_for(team).public_key_pem
    for key, real in stored:
        if on_s3:
            with real.path.open("rb") as body:
                bench.s3.put_object(Bucket=bench.bucket, Key=key, Body=body)
        else:
            path = bench.media / key
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real.path, path)
    return ClientShop(str(team.pk), str(products[0].pk), license_key, public_key_pem, content)


def release_files(
    team: Any, rows: list[Any], delivered: Any, real: Content, warm_up: Content | None
) -> list[tuple[str, Content]]:
    """A file row for each release: ``real``'s for ``delivered`` (and ``warm_up``'s for
    release WARM_UP_VERSION), fake for the others; returns the keys to store for real."""
    from releases.models import ReleaseFile
    from releases.storage import release_file_key

    stored: list[tuple[str, Content]] = []
    files = []
    for release in rows:
        file_id = uuid.uuid4()
        key = release_file_key(
            team_id=team.pk, release_id=release.pk, file_id=file_id, extension="jar"
        )
        content = real if release is delivered else None
        if warm_up is not None and release.version == WARM_UP_VERSION:
            content = warm_up
        if content is not None:
            stored.append((key, content))
        files.append(
            ReleaseFile(
                id=file_id,
                team=team,
                release=release,
                key=key,
                size=len(content.data) if content else FAKE_FILE_SIZE,
                name="build.jar",
                checksum=content.md5
                if content
                else hashlib.md5(b"x", usedforsecurity=False).hexdigest(),
                sha256=content.sha256 if content else hashlib.sha256(b"x").hexdigest(),
                main_class_name="com.example.Main",
            )
        )
    ReleaseFile.objects.bulk_create(files, batch_size=2000)
    return stored


def licenses_for(team: Any, product: Any, licenses: int) -> str:
    """``licenses`` licenses that open ``product``; the key of the first, which has seat limits
    with the measured device's seats taken."""
    from delivery.models import Seat, hwid_digest
    from teams.models import License
    from teams.services import license_create

    license, license_key = license_create(team=team, products=[product], ip_limit=10, hwid_limit=10)
    others = []
    for _ in range(licenses - 1):
        other = License(team=team)
        other.set_key(License.generate_key())
        others.append(other)
    License.objects.bulk_create(others, batch_size=2000)
    through = type(product).licenses.through
    through.objects.bulk_create(
        [through(product_id=product.pk, license_id=other.pk) for other in others],
        batch_size=2000,
    )
    for kind, value in (
        (Seat.Kind.IP, "127.0.0.1"),
        (Seat.Kind.HWID, hwid_digest(DELIVERY_HWID)),
    ):
        Seat.objects.create(license=license, kind=kind, value=value)
    return license_key


def fetch_classloader(
    base: str, shop: ClientShop, first_bytes: list[float] | None = None, **extra: str
) -> float:
    """Seconds to fetch the build through the classloader on a new connection, from the
    request to its last byte (and, into ``first_bytes``, to its status line and headers); the
    answer is then decrypted and compared (untimed)."""
    path, loader = shop.classloader(**extra)
    address = urlsplit(base)
    connection = http.client.HTTPConnection(
        address.hostname or HOST, address.port, timeout=REQUEST_TIMEOUT
    )
    try:
        started = time.perf_counter()
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        headers_in = time.perf_counter()
        reply = Reply(response.status, response.read())
        elapsed = time.perf_counter() - started
    except OSError as error:
        raise MeasureError(f"GET {path}: {error!r}") from error
    finally:
        connection.close()
    if first_bytes is not None:
        first_bytes.append(headers_in - started)
    if reply.status != 200:
        raise MeasureError(reply.short())
    try:
        plain = loader.decrypt(reply.body)
    except Exception as error:  # InvalidTag, a short frame
        raise MeasureError(f"the classloader's answer does not decrypt: {error!r}") from error
    if not extra and hashlib.sha256(plain).hexdigest() != shop.content.sha256:
        raise MeasureError("the classloader delivered other bytes than the stored build")
    return elapsed

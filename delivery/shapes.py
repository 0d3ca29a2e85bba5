"""The Client API's JSON shape: the release ``latest`` answers with, declared once for the
answer and the OpenAPI document (``lukittu.shapes``)."""

from lukittu.shapes import Boolean, Choice, Integer, One, Shape, Text, Time, Uuid, envelope
from releases.models import ReleaseStatus


class DeliverableFile(Shape):
    id = Uuid("id")
    name = Text("name")
    size = Integer("size", schema={"minimum": 0})
    md5 = Text("checksum", description="MD5 of the file (hex)")
    sha256 = Text("sha256", description="SHA-256 of the file (hex)")
    mainClassName = Text("main_class_name", nullable=True)
    createdAt = Time("created_at")


class DeliverableRelease(
    Shape,
    description="The release that `download` would deliver with the same parameters.",
):
    """Read from an ``access.Grant``: its release, file and line's latest version."""

    releaseId = Uuid("release.id")
    productId = Uuid("release.product_id")
    branch = Text(
        lambda grant: grant.release.branch.name if grant.release.branch_id else None,
        nullable=True,
        description="The branch's name; null for the main line",
    )
    version = Text("release.version")
    status = Choice([ReleaseStatus.PUBLISHED, ReleaseStatus.DEPRECATED], "release.status")
    latest = Boolean("release.latest", description="Whether it is its line's latest")
    latestVersion = Text(
        "latest_version",
        nullable=True,
        description="The version of the line's latest release with a file, if any",
    )
    createdAt = Time("release.created_at")
    file = One(DeliverableFile, "file", inline=True)


DeliverableReleaseResponse = envelope(DeliverableRelease)

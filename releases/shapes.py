"""The release, product and branch wire shapes, declared once for the answers and the OpenAPI
document (``lukittu.shapes``), under the seed's component names."""

from lukittu.shapes import Boolean, Integer, Many, Named, One, Shape, Text, Time, Uuid, page

EXAMPLE_CREATOR_ID = "0b5d3c43-6b6e-4a5b-9d1c-7e2f3a4b5c6d"
BRANCH_ID = "Branch this release belongs to; null for the main line"


class ProductData(Shape):
    """The seed's ``ProductData``."""

    id = Uuid("id")
    name = Text("name", description="Product name")
    url = Text("url", nullable=True, description="Product URL or homepage")
    teamId = Uuid("team_id")
    createdByUserId = Uuid(
        "created_by_user_id",
        description=(
            "Who created this product: the API key's id, or a stable id per operator "
            "(a UUIDv5 of `operator:<username>`)"
        ),
        schema={"example": EXAMPLE_CREATOR_ID},
    )
    createdAt = Time("created_at", description="Product creation timestamp")
    updatedAt = Time("updated_at", description="Product last update timestamp")


class BranchData(Shape):
    id = Uuid("id")
    name = Text("name")
    productId = Uuid("product_id")
    createdAt = Time("created_at")
    updatedAt = Time("updated_at")


class MetadataItem(Shape):
    key = Text("key", description="Metadata key")
    value = Text("value", description="Metadata value")
    locked = Boolean(
        "locked", description="Whether this metadata field is locked from client modification"
    )


class ReleaseFileData(Shape, nullable=True):
    id = Uuid("id")
    key = Text(
        "key",
        description="Storage key, made by the server: releases/{teamId}/{releaseId}/{fileId}.{ext}",
    )
    size = Integer("size", schema={"minimum": 0}, description="File size in bytes")
    name = Text("name", description="Original file name, without any path")
    checksum = Text("checksum", description="MD5 checksum of the file (hex)")
    sha256 = Text("sha256", description="SHA-256 of the file (hex)")
    mainClassName = Text(
        "main_class_name", nullable=True, description="Main class name (for JAR files)"
    )
    createdAt = Time("created_at", description="When this file was uploaded")


class ReleaseBranch(Shape):
    id = Uuid("id")
    name = Text("name")


class ReleaseData(Shape):
    """The seed's ``ReleaseData``: the release's own columns."""

    id = Uuid("id")
    version = Named("Version", "version")
    status = Named("ReleaseStatus", "status")
    latest = Boolean(
        "latest", description="Whether this is the latest release for the product/branch"
    )
    productId = Uuid("product_id")
    branchId = Uuid("branch_id", nullable=True, description=BRANCH_ID)
    teamId = Uuid("team_id")
    createdAt = Time("created_at")
    updatedAt = Time("updated_at")


class Release(
    ReleaseData,
    extends=True,
    description="A release with its metadata, product, branch, file and licenses.",
):
    """The seed's ``ReleaseResponse.data``: its product and branch are read from the release,
    its metadata, file and license ids given (a write passes the rows it just wrote)."""

    metadata = Many(
        One(MetadataItem, inline=True), component="Metadata", description="Key-value metadata pairs"
    )
    product = One(ProductData, "product")
    branch = One(ReleaseBranch, "branch", inline=True, nullable=True)
    file = One(ReleaseFileData)
    licenseIds = Many(Uuid(), description="Licenses allowed to download this release; [] for any")


ReleaseListResponse = page(
    Release,
    "releases",
    "ReleaseListResponse",
    total="Releases matching the filters, on all pages",
)
ProductPage = page(ProductData, "products")
BranchPage = page(BranchData, "branches")

"""The product and branch endpoints' part of the OpenAPI document: their schemas, JSON bodies,
and each operation's error table in the order the service checks it."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema

from lukittu.api import Code
from lukittu.fields import MAX_PAGE, PAGE_SIZES
from lukittu.openapi import (
    BAD_QUERY,
    BODY_ERRORS,
    EXAMPLE_TIMESTAMP,
    IDEMPOTENCY_ERRORS,
    INTERNAL_ERROR,
    INVALID_TEAM_ID,
    MALFORMED_IF_NONE_MATCH,
    PRECONDITION_FAILED,
    RATE_LIMITED,
    UNAUTHORIZED,
    ErrorCase,
    add_errors,
    json_request,
    one,
    page_response,
    path_parameter,
    register,
)
from releases.catalog import URL_PATTERN
from releases.models import NAME_PATTERN, NAME_RULE
from releases.openapi import (
    EXAMPLE_BRANCH_ID,
    EXAMPLE_PRODUCT_ID,
    TEXT_255,
)
from releases.serializers import TEXT_PATTERN
from releases.shapes import EXAMPLE_CREATOR_ID, BranchData, ProductData

Schema = dict[str, Any]
PRODUCTS = "Dev - Products"
BRANCHES = "Dev - Branches"
EXAMPLE_TEAM_ID = "123e4567-e89b-12d3-a456-426614174000"
NAME_255 = {**TEXT_255, "pattern": NAME_PATTERN}

path_parameter(
    "ProductIdPath", "productId", "The product's UUID, one of the team's.", EXAMPLE_PRODUCT_ID
)
path_parameter(
    "BranchIdPath",
    "branchId",
    "The branch's UUID, of one of the team's products.",
    EXAMPLE_BRANCH_ID,
)

PRODUCT_BODY = register(
    "schemas",
    "ProductBody",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {**NAME_255, "description": f"Not blank. {NAME_RULE}"},
            "url": {
                "type": "string",
                "maxLength": 500,
                "pattern": URL_PATTERN,
                "nullable": True,
                "description": "An http(s) URL with a host",
            },
        },
        "required": ["name"],
    },
)
BRANCH_BODY = register(
    "schemas",
    "BranchBody",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {
                **NAME_255,
                "description": f"Not blank; unique in the product. {NAME_RULE}",
            }
        },
        "required": ["name"],
    },
)


PRODUCT_EXAMPLE = {
    "id": EXAMPLE_PRODUCT_ID,
    "name": "My App",
    "url": "https://example.com",
    "teamId": EXAMPLE_TEAM_ID,
    "createdByUserId": EXAMPLE_CREATOR_ID,
    "createdAt": EXAMPLE_TIMESTAMP,
    "updatedAt": EXAMPLE_TIMESTAMP,
}
BRANCH_EXAMPLE = {
    "id": EXAMPLE_BRANCH_ID,
    "name": "beta",
    "productId": EXAMPLE_PRODUCT_ID,
    "createdAt": EXAMPLE_TIMESTAMP,
    "updatedAt": EXAMPLE_TIMESTAMP,
}

LIST_PARAMETERS = [
    OpenApiParameter(
        "search",
        {"type": "string", "maxLength": 255, "pattern": TEXT_PATTERN},
        description="Only names containing this text (case-insensitive)",
    ),
    OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, default=1),
    OpenApiParameter("pageSize", {"type": "integer", "enum": list(PAGE_SIZES)}, default=25),
]


# --- Errors, in the order they are checked -----------------------------------------------------

INVALID_PRODUCT_ID = ErrorCase(
    400, Code.BAD_REQUEST, "Invalid productId", "`productId` is not a UUID"
)
INVALID_BRANCH_ID = ErrorCase(400, Code.BAD_REQUEST, "Invalid branchId", "`branchId` is not a UUID")
PRODUCT_NOT_FOUND = ErrorCase(
    404, Code.PRODUCT_NOT_FOUND, "Product not found", "not a product of the team"
)
BRANCH_NOT_FOUND = ErrorCase(
    404, Code.RELEASE_NOT_FOUND, "Branch not found", "not a branch of the team's products"
)
NAME_TAKEN = ErrorCase(
    409,
    Code.BAD_REQUEST,
    "The product already has a branch with this name",
    "another branch of the product has the name",
)
TOO_MANY_BRANCHES = ErrorCase(
    403,
    Code.FORBIDDEN,
    "Max branches per product reached",
    "the product has the team's `max_branches_per_product` branches (10 by default)",
)


def in_use(what: str) -> ErrorCase:
    return ErrorCase(
        409,
        Code.BAD_REQUEST,
        f"The {what} has releases: delete or move them first, then the {what}",
        f"the {what} still has releases",
    )


def _head(*ids: ErrorCase) -> list[ErrorCase]:
    return [INVALID_TEAM_ID, *ids, UNAUTHORIZED, RATE_LIMITED]


add_errors("listProducts", lambda: [*_head(), BAD_QUERY, INTERNAL_ERROR])
add_errors("createProduct", lambda: [*_head(), *BODY_ERRORS, *IDEMPOTENCY_ERRORS, INTERNAL_ERROR])
add_errors(
    "getProduct",
    lambda: [
        *_head(INVALID_PRODUCT_ID),
        PRODUCT_NOT_FOUND,
        MALFORMED_IF_NONE_MATCH,
        INTERNAL_ERROR,
    ],
)
add_errors(
    "updateProduct",
    lambda: [
        *_head(INVALID_PRODUCT_ID),
        *BODY_ERRORS,
        *IDEMPOTENCY_ERRORS,
        PRODUCT_NOT_FOUND,
        PRECONDITION_FAILED,
        INTERNAL_ERROR,
    ],
)
add_errors(
    "deleteProduct",
    lambda: [
        *_head(INVALID_PRODUCT_ID),
        *IDEMPOTENCY_ERRORS,
        PRODUCT_NOT_FOUND,
        PRECONDITION_FAILED,
        in_use("product"),
        INTERNAL_ERROR,
    ],
)
add_errors(
    "listBranches",
    lambda: [*_head(INVALID_PRODUCT_ID), PRODUCT_NOT_FOUND, BAD_QUERY, INTERNAL_ERROR],
)
add_errors(
    "createBranch",
    lambda: [
        *_head(INVALID_PRODUCT_ID),
        *BODY_ERRORS,
        *IDEMPOTENCY_ERRORS,
        PRODUCT_NOT_FOUND,
        TOO_MANY_BRANCHES,
        NAME_TAKEN,
        INTERNAL_ERROR,
    ],
)
add_errors(
    "getBranch",
    lambda: [*_head(INVALID_BRANCH_ID), BRANCH_NOT_FOUND, MALFORMED_IF_NONE_MATCH, INTERNAL_ERROR],
)
add_errors(
    "updateBranch",
    lambda: [
        *_head(INVALID_BRANCH_ID),
        *BODY_ERRORS,
        *IDEMPOTENCY_ERRORS,
        BRANCH_NOT_FOUND,
        PRECONDITION_FAILED,
        NAME_TAKEN,
        INTERNAL_ERROR,
    ],
)
add_errors(
    "deleteBranch",
    lambda: [
        *_head(INVALID_BRANCH_ID),
        *IDEMPOTENCY_ERRORS,
        BRANCH_NOT_FOUND,
        PRECONDITION_FAILED,
        in_use("branch"),
        INTERNAL_ERROR,
    ],
)


# --- Operations --------------------------------------------------------------------------------

list_products = extend_schema(
    operation_id="listProducts",
    summary="List Products",
    description="The team's products by name, one page at a time.",
    tags=[PRODUCTS],
    parameters=LIST_PARAMETERS,
    responses={200: page_response(ProductData, "products", "Products found", PRODUCT_EXAMPLE)},
)
create_product = extend_schema(
    operation_id="createProduct",
    summary="Create Product",
    description="A new product of the team. `createdByUserId` is the API key's id.",
    tags=[PRODUCTS],
    **json_request(PRODUCT_BODY, {"name": "My App", "url": "https://example.com"}),
    responses={201: one(ProductData, "The product created", "Product created", PRODUCT_EXAMPLE)},
)
get_product = extend_schema(
    operation_id="getProduct",
    summary="Get Product",
    tags=[PRODUCTS],
    responses={200: one(ProductData, "The product", "Product found", PRODUCT_EXAMPLE)},
)
update_product = extend_schema(
    operation_id="updateProduct",
    summary="Update Product",
    description="Rename the product or change its URL (a missing `url` clears it).",
    tags=[PRODUCTS],
    **json_request(PRODUCT_BODY, {"name": "My App", "url": "https://example.com"}),
    responses={200: one(ProductData, "The product as stored", "Product updated", PRODUCT_EXAMPLE)},
)
delete_product = extend_schema(
    operation_id="deleteProduct",
    summary="Delete Product",
    description=(
        "Delete a product with no releases, with its branches. The response is the product "
        "as it was."
    ),
    tags=[PRODUCTS],
    responses={200: one(ProductData, "The product as it was", "Product deleted", PRODUCT_EXAMPLE)},
)
list_branches = extend_schema(
    operation_id="listBranches",
    summary="List Branches",
    description="The product's branches by name, one page at a time.",
    tags=[BRANCHES],
    parameters=LIST_PARAMETERS,
    responses={200: page_response(BranchData, "branches", "Branches found", BRANCH_EXAMPLE)},
)
create_branch = extend_schema(
    operation_id="createBranch",
    summary="Create Branch",
    tags=[BRANCHES],
    **json_request(BRANCH_BODY, {"name": "beta"}),
    responses={201: one(BranchData, "The branch created", "Branch created", BRANCH_EXAMPLE)},
)
get_branch = extend_schema(
    operation_id="getBranch",
    summary="Get Branch",
    tags=[BRANCHES],
    responses={200: one(BranchData, "The branch", "Branch found", BRANCH_EXAMPLE)},
)
update_branch = extend_schema(
    operation_id="updateBranch",
    summary="Rename Branch",
    tags=[BRANCHES],
    **json_request(BRANCH_BODY, {"name": "beta"}),
    responses={200: one(BranchData, "The branch as stored", "Branch updated", BRANCH_EXAMPLE)},
)
delete_branch = extend_schema(
    operation_id="deleteBranch",
    summary="Delete Branch",
    description="Delete a branch with no releases. The response is the branch as it was.",
    tags=[BRANCHES],
    responses={200: one(BranchData, "The branch as it was", "Branch deleted", BRANCH_EXAMPLE)},
)

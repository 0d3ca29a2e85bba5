"""Products and branches in the Developer API: the same envelope, key, team scoping, rate
limit and audit trail as releases. Bodies are JSON objects (there is no file to carry).

- ``/teams/{teamId}/products``: list (GET), create (POST);
- ``/teams/{teamId}/products/{productId}``: get, update (PUT), delete;
- ``/teams/{teamId}/products/{productId}/branches``: list, create;
- ``/teams/{teamId}/branches/{branchId}``: get, update (PUT), delete.

A product or branch with releases cannot be deleted (409); a branch name is unique within its
product (409); the team's ``max_branches_per_product`` caps branches (403).
"""

import re
from typing import Any

from django.db.models import Q
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lukittu.api import ApiError, Code, success
from lukittu.fields import MAX_PAGE, PAGE_SIZES, ClosedSerializer, StrictCharField, StrictPageField
from lukittu.views import JsonApiView, json_body, page_of, parse_query
from releases import catalog
from releases import catalog_openapi as openapi
from releases.catalog import URL_PATTERN, branch_payload, product_payload
from releases.models import Branch, Product, no_control_characters
from releases.shapes import BranchPage, ProductPage
from teams.conditions import (
    Conditions,
    conditional_get,
    fingerprint,
    run_write,
)
from teams.services import api_actor

# --- Bodies and queries ------------------------------------------------------------------------


# An http(s) URL with a host: the rule the OpenAPI document states as a pattern, so a client
# can check it before sending (Django's URLValidator adds host-length rules no schema can say).
PRODUCT_URL = re.compile(URL_PATTERN)


# A branch's body is its name, which a product's body shares (with the same rules).
class BranchBodySerializer(ClosedSerializer):
    name = StrictCharField(min_length=1, max_length=255, validators=[no_control_characters])

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Must not be blank.")
        return value


class ProductBodySerializer(BranchBodySerializer):
    url = StrictCharField(max_length=500, required=False, allow_null=True)

    def validate_url(self, value: str | None) -> str | None:
        if value is not None and not PRODUCT_URL.fullmatch(value):
            raise serializers.ValidationError("Enter an http:// or https:// URL with a host.")
        return value


class CatalogListQuerySerializer(serializers.Serializer):
    page = StrictPageField(min_value=1, max_value=MAX_PAGE, default=1)
    pageSize = serializers.ChoiceField(choices=PAGE_SIZES, default=25)
    search = serializers.CharField(max_length=255, required=False, allow_blank=True)


def list_query(request: Request) -> dict[str, Any]:
    return parse_query(request, CatalogListQuerySerializer)


# --- Lookups inside the key's team -------------------------------------------------------------


def product_in_team(request: Request, product_id: Any) -> Product:
    product = Product.objects.filter(pk=product_id, team=request.auth.team).first()
    if product is None:
        raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
    return product


def branch_in_team(request: Request, branch_id: Any) -> Branch:
    branch = Branch.objects.filter(pk=branch_id, product__team=request.auth.team).first()
    if branch is None:
        raise ApiError(404, Code.RELEASE_NOT_FOUND, "Branch not found")
    return branch


# --- Views -------------------------------------------------------------------------------------


class ProductListView(JsonApiView):
    @openapi.list_products
    def get(self, request: Request, **kwargs: Any) -> Response:
        query = list_query(request)
        products = Product.objects.filter(team=request.auth.team).order_by("name", "id")
        if query.get("search", "").strip():
            products = products.filter(Q(name__icontains=query["search"].strip()))
        items, total, has_next = page_of(products, query)
        return success(ProductPage.data(items, total, has_next), details="Products found")

    @openapi.create_product
    def post(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, ProductBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            product = catalog.product_create(
                team=request.auth.team,
                name=body["name"],
                url=body.get("url"),
                actor=api_actor(request),
            )
            return product_payload(product)

        return run_write(
            request, lambda: fingerprint(body), write, status=201, details="Product created"
        )


class ProductDetailView(JsonApiView):
    path_ids = {"teamId": "team_id", "productId": "product_id"}

    @openapi.get_product
    def get(self, request: Request, **kwargs: Any) -> Response:
        product = product_in_team(request, self.product_id)
        return conditional_get(request, product_payload(product), "Product found")

    @openapi.update_product
    def put(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, ProductBodySerializer)
        changes = {"name": body["name"], "url": body.get("url")}

        def write(conditions: Conditions) -> dict[str, Any]:
            product = product_in_team(request, self.product_id)
            updated = catalog.product_update(
                product=product, changes=changes, actor=api_actor(request), conditions=conditions
            )
            return product_payload(updated)

        return run_write(
            request, lambda: fingerprint(body), write, status=200, details="Product updated"
        )

    @openapi.delete_product
    def delete(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            product = product_in_team(request, self.product_id)
            payload = product_payload(product)
            catalog.product_delete(product=product, actor=api_actor(request), conditions=conditions)
            return payload

        return run_write(
            request, lambda: fingerprint(None), write, status=200, details="Product deleted"
        )


class BranchListView(JsonApiView):
    path_ids = {"teamId": "team_id", "productId": "product_id"}

    @openapi.list_branches
    def get(self, request: Request, **kwargs: Any) -> Response:
        product = product_in_team(request, self.product_id)
        query = list_query(request)
        branches = Branch.objects.filter(product=product).order_by("name", "id")
        if query.get("search", "").strip():
            branches = branches.filter(name__icontains=query["search"].strip())
        items, total, has_next = page_of(branches, query)
        return success(BranchPage.data(items, total, has_next), details="Branches found")

    @openapi.create_branch
    def post(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, BranchBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            product = product_in_team(request, self.product_id)
            branch = catalog.branch_create(
                product=product, name=body["name"], actor=api_actor(request)
            )
            return branch_payload(branch)

        return run_write(
            request, lambda: fingerprint(body), write, status=201, details="Branch created"
        )


class BranchDetailView(JsonApiView):
    path_ids = {"teamId": "team_id", "branchId": "branch_id"}

    @openapi.get_branch
    def get(self, request: Request, **kwargs: Any) -> Response:
        branch = branch_in_team(request, self.branch_id)
        return conditional_get(request, branch_payload(branch), "Branch found")

    @openapi.update_branch
    def put(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, BranchBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            branch = branch_in_team(request, self.branch_id)
            updated = catalog.branch_update(
                branch=branch, changes=body, actor=api_actor(request), conditions=conditions
            )
            return branch_payload(updated)

        return run_write(
            request, lambda: fingerprint(body), write, status=200, details="Branch updated"
        )

    @openapi.delete_branch
    def delete(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            branch = branch_in_team(request, self.branch_id)
            payload = branch_payload(branch)
            catalog.branch_delete(branch=branch, actor=api_actor(request), conditions=conditions)
            return payload

        return run_write(
            request, lambda: fingerprint(None), write, status=200, details="Branch deleted"
        )

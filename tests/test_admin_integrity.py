"""Owners are fixed: a product's team, a branch's product (and a key's or license's team) are
chosen at creation and no path changes them; teams that share a name are told apart."""

import re

import pytest
from django.core.exceptions import ValidationError

from releases.models import Branch, Product
from teams.models import ApiKey, FixedFieldError, License
from teams.services import team_create


def _team_select(page: str) -> str:
    match = re.search(r'<select name="team"[^>]*>(.*?)</select>', page, re.S)
    assert match, "the form has no team select"
    return match.group(1)


# --- Through the admin -------------------------------------------------------------------------


def test_a_posted_team_is_ignored_on_the_product_change_form(staff, world, outsider):
    page = staff.get(f"/admin/releases/product/{world.product.pk}/change/").content.decode()
    assert '<select name="team"' not in page and str(world.team) in page  # shown, read-only

    response = staff.post(
        f"/admin/releases/product/{world.product.pk}/change/",
        {
            "name": "Renamed App",
            "url": "",
            "team": outsider.team.pk,
            "branches-TOTAL_FORMS": "0",
            "branches-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    world.product.refresh_from_db()
    assert (world.product.name, world.product.team_id) == ("Renamed App", world.team.pk)


def test_a_posted_product_is_ignored_on_the_branch_change_form(staff, world):
    url = f"/admin/releases/branch/{world.branch.pk}/change/"
    assert '<select name="product"' not in staff.get(url).content.decode()

    response = staff.post(url, {"name": "rc", "product": world.other_product.pk})

    assert response.status_code == 302
    world.branch.refresh_from_db()
    assert (world.branch.name, world.branch.product_id) == ("rc", world.product.pk)


def test_the_add_form_lets_the_operator_choose_the_team(staff, world, outsider):
    options = _team_select(staff.get("/admin/releases/product/add/").content.decode())
    assert str(world.team) in options and str(outsider.team) in options

    response = staff.post(
        "/admin/releases/product/add/",
        {
            "team": outsider.team.pk,
            "name": "New App",
            "url": "",
            "branches-TOTAL_FORMS": "0",
            "branches-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    assert Product.objects.get(name="New App").team_id == outsider.team.pk


def test_the_branch_add_form_names_each_product_with_its_team(staff, world, outsider):
    page = staff.get("/admin/releases/branch/add/").content.decode()
    assert f"Owner App · {world.team}" in page
    assert f"Outsider App · {outsider.team}" in page

    response = staff.post(
        "/admin/releases/branch/add/", {"product": outsider.product.pk, "name": "nightly"}
    )

    assert response.status_code == 302
    assert Branch.objects.get(name="nightly").product_id == outsider.product.pk


# --- Through the models ------------------------------------------------------------------------


def test_saving_a_product_with_another_team_raises(world, outsider):
    product = Product.objects.get(pk=world.product.pk)
    product.team = outsider.team

    with pytest.raises(FixedFieldError) as error:
        product.save()
    assert "team" in error.value.message_dict
    with pytest.raises(FixedFieldError):
        product.save(update_fields=["team_id"])
    with pytest.raises(ValidationError):
        product.full_clean()

    assert Product.objects.get(pk=world.product.pk).team_id == world.team.pk


def test_an_instance_built_by_hand_cannot_move_a_product_either(world, outsider):
    # Not loaded from the database at all: the check compares with the stored row.
    product = Product(pk=world.product.pk, team=outsider.team, name="Hijack")
    product._state.adding = False

    with pytest.raises(FixedFieldError):
        product.save()

    assert Product.objects.get(pk=world.product.pk).team_id == world.team.pk


def test_saving_a_branch_with_another_product_raises(world):
    branch = Branch.objects.get(pk=world.branch.pk)
    branch.product = world.other_product

    with pytest.raises(FixedFieldError):
        branch.save()

    assert Branch.objects.get(pk=world.branch.pk).product_id == world.product.pk


def test_other_fields_still_save(world):
    product = Product.objects.get(pk=world.product.pk)
    product.name = "Renamed"
    product.save()
    branch = Branch.objects.get(pk=world.branch.pk)
    branch.name = "rc"
    branch.save(update_fields=["name"])

    assert Product.objects.get(pk=product.pk).name == "Renamed"
    assert Branch.objects.get(pk=branch.pk).name == "rc"


@pytest.mark.parametrize(
    "update",
    [
        lambda world, other: Product.objects.filter(pk=world.product.pk).update(team=other.team),
        lambda world, other: Product.objects.all().update(team_id=other.team.pk),
        lambda world, other: Branch.objects.all().update(product=other.product),
        lambda world, other: ApiKey.objects.all().update(team=other.team),
        lambda world, other: License.objects.all().update(team_id=other.team.pk),
    ],
    ids=["product.team", "product.team_id", "branch.product", "api_key.team", "license.team"],
)
def test_queryset_update_of_an_owner_is_refused(world, outsider, update):
    with pytest.raises(FixedFieldError):
        update(world, outsider)

    assert Product.objects.filter(team=world.team).count() == 2
    assert Branch.objects.get(pk=world.branch.pk).product_id == world.product.pk
    assert world.team.api_keys.count() == 1 and world.team.licenses.count() == 3


def test_bulk_update_of_an_owner_is_refused(world, outsider):
    product = Product.objects.get(pk=world.product.pk)
    product.team = outsider.team

    with pytest.raises(FixedFieldError):
        Product.objects.bulk_update([product], ["team"])

    assert Product.objects.get(pk=world.product.pk).team_id == world.team.pk


def test_keys_and_licenses_keep_their_team(world, outsider):
    key = ApiKey.objects.get(team=world.team)
    key.team = outsider.team
    license = world.licenses[0]
    license.team = outsider.team

    with pytest.raises(FixedFieldError):
        key.save()
    with pytest.raises(FixedFieldError):
        license.save()


# --- Teams told apart --------------------------------------------------------------------------


def test_a_team_reads_as_its_name_and_the_start_of_its_id(db):
    team = team_create(name="Acme")

    assert str(team) == f"Acme ({team.pk.hex[:8]})"


def test_teams_with_one_name_differ_in_selects_and_filters(staff, db):
    first, second = team_create(name="Acme"), team_create(name="Acme")

    options = _team_select(staff.get("/admin/teams/license/add/").content.decode())
    assert str(first) in options and str(second) in options and str(first) != str(second)
    filters = staff.get("/admin/teams/apikey/").content.decode()
    assert str(first) in filters and str(second) in filters

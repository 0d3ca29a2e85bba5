"""The address in the audit log is the connection's (REMOTE_ADDR) unless NUM_PROXIES says how
many proxies in front append to X-Forwarded-For; then it is the hop the nearest of them added.
A client never chooses its own recorded address."""

import pytest

from teams.models import AuditLog
from tests.helpers import put_release, update_data
from tests.test_settings_env import GOOD, load_settings

TEST_CLIENT_ADDRESS = "127.0.0.1"  # Django's test client's REMOTE_ADDR


def logged_address(client, world, **headers):
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release),
        **headers,
    )
    assert response.status_code == 200, response.content
    return AuditLog.objects.get(team=world.team, action="release.update").ip_address


@pytest.fixture
def proxies(settings):
    """Set NUM_PROXIES as the settings module does, in both places it appears (DRF reloads its
    settings when REST_FRAMEWORK changes)."""

    def set_proxies(count):
        settings.NUM_PROXIES = count
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return set_proxies


def test_by_default_a_forwarded_for_header_is_ignored(client, world):
    address = logged_address(client, world, HTTP_X_FORWARDED_FOR="6.6.6.6")

    assert address == TEST_CLIENT_ADDRESS


def test_without_a_forwarded_for_header_the_connection_address_is_logged(client, world):
    assert logged_address(client, world) == TEST_CLIENT_ADDRESS


def test_behind_one_proxy_the_address_it_forwarded_is_logged(client, world, proxies):
    proxies(1)

    assert logged_address(client, world, HTTP_X_FORWARDED_FOR="6.6.6.6") == "6.6.6.6"


def test_behind_one_proxy_a_hop_the_client_sent_is_ignored(client, world, proxies):
    proxies(1)

    # The client sent "6.6.6.6"; the proxy appended the address it saw.
    address = logged_address(client, world, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")

    assert address == "203.0.113.7"


def test_behind_two_proxies_the_outer_ones_hop_is_logged(client, world, proxies):
    proxies(2)

    address = logged_address(client, world, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 10.0.0.2")

    assert address == "203.0.113.7"


@pytest.mark.parametrize(("env", "expected"), [({}, "0 0"), ({"NUM_PROXIES": "2"}, "2 2")])
def test_the_settings_give_drf_the_same_number(env, expected):
    result = load_settings(
        {**GOOD, **env},
        "import lukittu.settings as s; print(s.NUM_PROXIES, s.REST_FRAMEWORK['NUM_PROXIES'])",
    )

    assert result.returncode == 0, result.stderr
    # A number, never None: DRF would then take X-Forwarded-For exactly as the client sent it.
    assert result.stdout.strip() == expected

"""Settings for the test suite: the project's settings plus a test secret and a file-backed
SQLite test database (threads and server processes in the tests must share it)."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("TEAM_KEYS_SECRET", "tests-only-team-keys-secret")

from lukittu.settings import *  # noqa: F403
from lukittu.settings import BASE_DIR, DATABASES

# One test database per run, so parallel runs never share one.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_lukittu_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test client speaks plain HTTP; tests of the redirect turn it back on.
SECURE_SSL_REDIRECT = False

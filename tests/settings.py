"""Settings for the test suite: the project's settings plus a test secret and a file-backed
SQLite test database (threads and server processes in the tests must share it)."""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("TEAM_KEYS_SECRET", "tests-only-team-keys-secret")


def _redis_url_of_this_worker(url: str, worker: str) -> str:
    """Under pytest-xdist, worker gwN uses the Redis database N below the one REDIS_URL names
    (gw0 15, gw1 14, ...): each test clears the cache, which must not empty another worker's."""
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))
    if database < 0:
        raise ValueError(f"REDIS_URL's database leaves no Redis database for xdist {worker}")
    return urlunsplit(parts._replace(path=f"/{database}"))


# Changed in the environment, so the servers and commands the tests start use it too.
if os.environ.get("REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["REDIS_URL"] = _redis_url_of_this_worker(
        os.environ["REDIS_URL"], os.environ["PYTEST_XDIST_WORKER"]
    )

# Temporary uploads per xdist worker (and inherited by the processes its tests start): a test
# that runs the reconciler with no grace period removes every temporary file in the folder,
# which must not be another worker's upload in flight. (A worker inherits the controller's
# environment, this variable included, so a worker always sets its own.)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER or not os.environ.get("UPLOAD_TEMP_DIR"):
    _ROOT = Path(__file__).resolve().parent.parent
    os.environ["UPLOAD_TEMP_DIR"] = str(_ROOT / "var" / f"uploads-{_WORKER or 'main'}")

# After the environment is set: the project's settings read it when imported.
from lukittu.settings import *  # noqa: E402, F403
from lukittu.settings import BASE_DIR, DATABASES  # noqa: E402

# One test database per run (per xdist worker: each is a process), so they never share one.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_lukittu_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test client speaks plain HTTP; tests of the redirect turn it back on.
SECURE_SSL_REDIRECT = False

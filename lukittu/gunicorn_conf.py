"""Gunicorn settings for production: ``gunicorn -c lukittu/gunicorn_conf.py lukittu.wsgi``.

Gunicorn puts its working directory on ``sys.path`` before it reads this file, so the project's
environment readers can be imported (and fail loudly on a bad value here too)."""

import os
from typing import Any

from lukittu import gunicorn_errors, log_redaction, recycling
from lukittu.env import env_int, env_list, env_str

# Threads: a request mostly waits on the database or S3, and an idle keep-alive connection
# waits in the worker's poller without holding a thread.
worker_class = "gthread"
# The usual 2 x CPUs + 1, capped at 8: every thread may hold a database connection, and 8 x 4
# threads stays well under PostgreSQL's default of 100 connections on a many-core host.
workers = env_int("GUNICORN_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8), minimum=1)
# Requests served at once per worker: enough to overlap waits on the database and S3, few
# enough that each worker holds only a handful of database connections.
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
# Loopback behind a reverse proxy; a platform that sets PORT expects every interface.
bind = env_list(
    "GUNICORN_BIND",
    [f"0.0.0.0:{env_int('PORT', 0, minimum=1)}"] if env_str("PORT") else ["127.0.0.1:8000"],
)
# With gthread this is the worker's heartbeat, not a request deadline: a worker whose main loop
# is stuck this long is killed. Requests are bounded by the timeouts of every outbound call and
# by the upload size limit.
timeout = 60
# After SIGTERM or a reload, in-flight requests (an upload on a slow link) get this long.
graceful_timeout = 30
# Seconds an idle keep-alive connection stays open for the client's next request; a proxy in
# front should close its idle upstream connections sooner, so it never sends on a closed one.
keepalive = 5
# Gunicorn's default, which fits the longest valid list URL (a 255-character search,
# percent-encoded, is at most about 3 KB).
limit_request_line = 4094
# A client and a couple of proxies need a few dozen headers, not hundreds.
limit_request_fields = 50
# Gunicorn's default: room for the admin's session and CSRF cookies.
limit_request_field_size = 8190
# Gunicorn's own recycling is off: it lets every worker restart whenever its count runs out,
# two at once included. lukittu/recycling.py replaces a worker after GUNICORN_MAX_REQUESTS
# requests plus a random share of GUNICORN_MAX_REQUESTS_JITTER (by default 50,000 to 75,000:
# at 100 requests a second a worker every 8 to 12 minutes), one worker at a time, its
# replacement warmed before it accepts. It bounds slow memory growth in a long-lived worker;
# each recycle costs a boot (about a second of CPU) and the recycled worker's kept-alive
# connections. 0 turns it off.
max_requests = 0
max_requests_jitter = 0
_max_requests = env_int("GUNICORN_MAX_REQUESTS", 50_000, minimum=0)
RECYCLING = recycling.Recycling(
    max_requests=_max_requests,
    jitter=env_int("GUNICORN_MAX_REQUESTS_JITTER", _max_requests // 2, minimum=0),
)
# Addresses whose X-Forwarded-Proto gunicorn believes (for https links and secure cookies).
# The client address in the audit log is NUM_PROXIES's job, not this.
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One line per request on stdout, for whatever collects the process's output.
accesslog = "-"
# The Client API's credentials travel in the query string: the access log and gunicorn's own
# error lines write request URLs with those values (and any parameter named like a key, token,
# secret, password or signature) replaced by [REDACTED], and never a credential header.
logger_class = log_redaction.RedactingGunicornLogger


def on_starting(server: object) -> None:
    """Gunicorn's own refusals (a request line over ``limit_request_line``, too many or too
    long headers, a malformed request) answer in the service's JSON envelope, not HTML."""
    gunicorn_errors.install()


def pre_fork(server: Any, worker: Any) -> None:
    RECYCLING.pre_fork(worker)


def post_fork(server: Any, worker: Any) -> None:
    RECYCLING.post_fork(worker)


def child_exit(server: Any, worker: Any) -> None:
    RECYCLING.child_exit(worker)


def post_worker_init(worker: Any) -> None:
    """Before the worker accepts its first connection: every view imported, the storage client
    made, each thread's database and cache connections open (lukittu/warm.py). Then, if it
    replaces a recycled worker, the next one may recycle."""
    from lukittu import warm  # Django is set up by now (the application is loaded)

    seconds = warm.warm_worker(worker)
    worker.log.info("Worker %s warmed up in %.2f s", os.getpid(), seconds)
    RECYCLING.ready(worker)


def pre_request(worker: Any, request: Any) -> None:
    RECYCLING.pre_request(worker)

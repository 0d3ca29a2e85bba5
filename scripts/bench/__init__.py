"""Benchmark of the service against real gunicorn servers: one module a measured row.

``make bench`` (or ``.venv/bin/python -m scripts.bench`` from the repository). It sets up
everything it needs on 127.0.0.1 (a fresh PostgreSQL database, Redis database 14, moto's S3
server behind a throttling TCP proxy, gunicorn with the repository's config file) and removes it
all at the end. Every figure is the ratio of two measurements made in the same run (the median
of a few repeats each), printed with the target it answers to. It exits 0 whether or not the
targets are met; only a failed setup is a non-zero exit. A request that fails (not 200, or a
stored SHA-256 that is not the one sent) is reported as an error in its row: a fast failure
never counts as fast.

``harness`` starts and stops what is measured, ``wire`` speaks HTTP to it, ``world`` writes the
test data, ``shop`` sets up the Client API rows, ``results`` prints the table; each
``row_NN_*`` module is one measurement (two rows where they share one server).
"""

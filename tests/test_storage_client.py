"""One S3 client per process, made when a worker warms up: not one per thread on its first
storage call (each costs about 0.1 s of CPU and over 10 MiB while S3's model loads)."""

import copy
import multiprocessing
import threading

import pytest
from botocore.config import Config
from django.core.files.storage import storages

from lukittu import warm
from lukittu.storage_settings import s3_storage
from releases.storage import ReleaseS3Storage, release_storage

OPTIONS = s3_storage(
    bucket_name="releases",
    # Never called: making a client opens no connection.
    endpoint_url="http://127.0.0.1:9",
    region_name="us-east-1",
    access_key="testing",
    secret_key="testing",
)


@pytest.fixture
def on_s3(settings):
    settings.STORAGES = {**settings.STORAGES, "default": OPTIONS}
    storage = release_storage()
    assert isinstance(storage, ReleaseS3Storage)
    return storage


def clients_seen_by_threads(storage: ReleaseS3Storage, threads: int = 8) -> list:
    seen = []
    barrier = threading.Barrier(threads)

    def call() -> None:
        barrier.wait(10)
        seen.append(storage.connection.meta.client)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return seen


def test_every_thread_of_a_process_uses_one_client(on_s3):
    seen = clients_seen_by_threads(on_s3)
    assert len(seen) == 8
    assert all(client is seen[0] for client in seen)
    assert on_s3.connection.meta.client is seen[0]
    assert on_s3.bucket.meta.client is seen[0]


def test_the_warm_up_makes_the_client_before_any_request(on_s3):
    assert on_s3._shared is None
    warm.warm_process()
    made = on_s3._shared
    assert made is not None
    assert clients_seen_by_threads(on_s3)[0] is made[1].meta.client


def test_a_copy_with_other_timeouts_makes_a_client_of_its_own(on_s3):
    """The readiness probe copies the storage with one attempt and short timeouts."""
    shared = on_s3.connection.meta.client
    probe = copy.copy(on_s3)
    probe.client_config = on_s3.client_config.merge(Config(connect_timeout=1))
    assert probe.connection.meta.client is not shared
    assert probe.connection.meta.client.meta.config.connect_timeout == 1
    assert shared.meta.config.connect_timeout == 5
    assert on_s3.connection.meta.client is shared


def child_uses_parent_client(storage, parent_client, answers) -> None:
    answers.put(storage.connection.meta.client is parent_client)


def test_a_forked_worker_makes_its_own_client(on_s3):
    """A client's pooled sockets must not be shared by two processes."""
    parent_client = on_s3.connection.meta.client
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=child_uses_parent_client, args=(on_s3, parent_client, answers))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert answers.get(timeout=5) is False
    assert on_s3.connection.meta.client is parent_client


def test_local_files_need_no_client(settings):
    warm.warm_process()
    assert not hasattr(type(storages["default"]), "connection")

"""The job queue on a real Redis server, as STRONGROOM_REDIS_URL configures it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from huey.signals import SIGNAL_COMPLETE

from strongroom.base.config import Settings, load_settings
from strongroom.base.errors import ConfigurationError
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.jobs import QUEUE_FILE
from strongroom.tenancy.rollups import ROLL_UP
from tests.conftest import Cast
from tests.metering.conftest import run_consumer
from tests.metering.readings import only_row
from tests.metering.test_rollups import HOUR, STORED, meter_hour, store_bytes
from tests.services.redis import RedisServer


@pytest.fixture
def redis_settings(settings: Settings, redis_server: RedisServer) -> Settings:
    redis_server.flush()
    return settings.model_copy(update={"redis_url": redis_server.url()})


@pytest.fixture
def redis_runtime(redis_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(redis_settings)
    try:
        yield runtime
    finally:
        runtime.close()


def test_redis_queue_holds_enqueued_job(
    redis_runtime: Runtime, redis_server: RedisServer, cast: Cast
) -> None:
    redis_runtime.jobs.enqueue(ROLL_UP, cast.acme.id, hours=[HOUR.isoformat()])

    with redis.Redis.from_url(redis_server.url()) as client:
        queued = client.llen("huey.redis.strongroom")
    assert queued == 1
    assert not (redis_runtime.settings.data_dir / QUEUE_FILE).exists()


def test_redis_roll_up_twice_counts_once(redis_runtime: Runtime, cast: Cast) -> None:
    store_bytes(redis_runtime, cast)
    meter_hour(redis_runtime, cast)

    with run_consumer(redis_runtime.jobs) as watcher:
        tasks = [
            redis_runtime.jobs.enqueue(ROLL_UP, cast.acme.id, hours=[HOUR.isoformat()])
            for _ in range(2)
        ]
        outcomes = [watcher.wait(task) for task in tasks]

    row = only_row(redis_runtime.engine, cast.acme.id)
    assert outcomes == [SIGNAL_COMPLETE, SIGNAL_COMPLETE]
    assert row.storage_byte_hours == STORED
    assert row.active_users == 1
    assert row.requests == 3


def test_redis_url_of_other_scheme_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(data_dir=tmp_path, redis_url="http://:secret-word@127.0.0.1:6379")

    assert "STRONGROOM_REDIS_URL" in raised.value.detail
    assert "redis://HOST:PORT/DB" in raised.value.detail
    assert "secret-word" not in raised.value.detail

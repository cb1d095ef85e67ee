"""JetStream streams and KV buckets: declared once, created idempotently by every service."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from bus import subjects


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """The streams cloudscheduler needs, with `replicas` copies each (3 on a NATS cluster)."""
    def work_queue(name: str, subject: str) -> StreamConfig:
        # Deduplicates resends of one message id for two minutes.
        return StreamConfig(name=name, subjects=[subject],
                            retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                            duplicate_window=120.0, num_replicas=replicas)

    return [
        work_queue(subjects.INTENT_STREAM, subjects.intents_all()),
        work_queue(subjects.CONDOR_STREAM, subjects.condor_action()),
        StreamConfig(
            name=subjects.SNAPSHOT_STREAM,
            subjects=subjects.snapshot_subjects(),
            retention=RetentionPolicy.LIMITS,
            max_msgs_per_subject=1,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=subjects.HISTORY_STREAM,
            subjects=[subjects.history()],
            retention=RetentionPolicy.LIMITS,
            max_age=subjects.HISTORY_MAX_AGE_S,
            duplicate_window=subjects.HISTORY_DEDUP_S,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
    ]


def bucket_configs(replicas: int = 1) -> list[KeyValueConfig]:
    """The KV buckets cloudscheduler needs."""
    def bucket(name: str, history: int = 1, ttl: float | None = None) -> KeyValueConfig:
        return KeyValueConfig(bucket=name, history=history, ttl=ttl,
                              storage=StorageType.FILE, replicas=replicas)

    return [
        bucket(subjects.CLOUDS_BUCKET, history=5),
        bucket(subjects.HEALTH_BUCKET),
        bucket(subjects.CAPACITY_BUCKET),
        # A service instance that stops reporting (crashed) expires from the bucket.
        bucket(subjects.SERVICES_BUCKET, ttl=subjects.SERVICE_TTL_S),
        bucket(subjects.VMS_BUCKET),
    ]


class NotReady(Exception):
    """JetStream answered but cannot place a stream yet (a cluster still forming)."""


async def ensure(js: JetStreamContext, replicas: int = 1) -> None:
    """Create every stream and bucket that does not exist yet; leave existing ones alone."""
    for config in stream_configs(replicas):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError as exc:
                # Another service created it between our look-up and our add, or the cluster
                # has not got enough peers for `replicas` yet ("no suitable peers").
                await _exists_or_not_ready(js, config.name, exc)
    for kv_config in bucket_configs(replicas):
        try:
            await js.key_value(kv_config.bucket)
        except (NotFoundError, BadRequestError):
            try:
                await js.create_key_value(kv_config)
            except BadRequestError as exc:
                await _exists_or_not_ready(js, f"KV_{kv_config.bucket}", exc)


async def _exists_or_not_ready(js: JetStreamContext, stream: str, exc: BadRequestError) -> None:
    try:
        await js.stream_info(stream)
    except NotFoundError:
        raise NotReady(f"cannot create {stream}: {exc.description}") from None

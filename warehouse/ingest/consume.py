"""Read the change topics: assign partitions at the positions stored in DuckDB, fetch in chunks.

The loader assigns partitions itself instead of joining a consumer group: DuckDB takes one writer
per file, so a second loader would only wait for the lock, and a group rebalance would add nothing
but a window for duplicates. New topics matching the configured names or regexes are picked up by
`discover`, at their stored position or from the beginning. Offsets are committed to Kafka after
each batch lands, for lag monitoring only.
"""

from __future__ import annotations

import logging
import re
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from warehouse.exceptions import TerminalError, TransientError
from warehouse.ingest.catalog import service_of
from warehouse.ingest.configuration import LoaderSettings

log = logging.getLogger(__name__)

CHUNK = 1_000
"""Messages asked of librdkafka per call; the decoder takes them chunk by chunk. Each call copies
its messages' values (4-5 KB each with the schema) into Python: 1,000 keep that under 5 MB, where
5,000 measured about 35 MB more peak RSS and no faster."""

TP = tuple[str, int]

LIBRDKAFKA = logging.getLogger("warehouse.ingest.librdkafka")
"""librdkafka's own log lines (a connection refused, every 50 ms to 1 s while a broker is down). What
matters among them reaches `error_cb` too, and is reported once from there; these show with `-v`."""


class ChangeConsumer:
    def __init__(self, settings: LoaderSettings, stored: dict[TP, int]) -> None:
        self.settings = settings
        self.stored = stored
        self._exact = {t for t in settings.loader_topics if not t.startswith("^")}
        self._patterns = [re.compile(t) for t in settings.loader_topics if t.startswith("^")]
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": settings.loader_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "queued.max.messages.kbytes": settings.loader_fetch_kbytes,
                # librdkafka pauses fetching for a full second whenever its prefetch queue is full; the
                # loader empties it in milliseconds, so that pause alone capped it at ~17k messages/s.
                "fetch.queue.backoff.ms": 5,
                "fetch.max.bytes": 16 * 1024 * 1024,
                "max.partition.fetch.bytes": 4 * 1024 * 1024,
                "fetch.wait.max.ms": 100,
                "client.id": "mirador-loader",
                "logger": _Debug(LIBRDKAFKA),
                "error_cb": self._on_client_error,
            }
        )
        self.assigned: set[TP] = set()
        self.next: dict[TP, int] = {}
        self._last_error_log = 0.0
        self.last_error: KafkaError | None = None
        """The client's last error (a refused connection, all brokers down), for the message that gives up."""
        self.committed: dict[TP, int] = {tp: offset for tp, offset in stored.items() if self.wants(tp[0])}
        """The last positions told to Kafka, committed again, synchronously, when the loader stops. They
        start as the positions stored in DuckDB: a loader killed between its commit there and Kafka's
        leaves Kafka behind, and a next run with nothing to land must still catch it up."""

    def wants(self, topic: str) -> bool:
        return topic in self._exact or any(p.match(topic) for p in self._patterns)

    def discover(self) -> list[TP]:
        """Assign partitions of matching topics not yet assigned; drop those whose topic is gone."""
        try:
            metadata = self.consumer.list_topics(timeout=self.settings.loader_kafka_timeout)
        except KafkaException as err:
            raise self.unreachable("listing its topics", err) from err
        present = {
            (name, p)
            for name, topic in metadata.topics.items()
            if self.wants(name) and topic.error is None
            for p in topic.partitions
        }
        gone = self.assigned - present
        if gone:
            self.consumer.incremental_unassign([TopicPartition(t, p) for t, p in gone])
            self.assigned -= gone
            log.info("unassigned %d partitions of deleted topics", len(gone))
        new = sorted(present - self.assigned)
        if new:
            partitions = [TopicPartition(t, p, self.stored.get((t, p), OFFSET_BEGINNING)) for t, p in new]
            self.consumer.incremental_assign(partitions)
            self.assigned |= set(new)
            for tp in new:
                if tp in self.stored:
                    self.next[tp] = self.stored[tp]
            log.info("assigned %d partitions (%s)", len(new), ", ".join(sorted({t for t, _ in new}))[:300])
        return new

    def fetch(self, limit: int, timeout: float) -> list[Message]:
        """Up to `limit` messages within `timeout` seconds; error events are handled, not returned."""
        messages = self.consumer.consume(num_messages=min(limit, CHUNK), timeout=timeout)
        if messages and any(m.error() is not None for m in messages):
            for m in messages:
                if m.error() is not None:
                    self._on_error(m)
            messages = [m for m in messages if m.error() is None]
        return messages

    def unreachable(self, doing: str, err: KafkaException | None = None) -> TransientError:
        """Kafka did not answer: one line naming the broker, what the loader tried, why, and the fix."""
        cause = self.last_error or (err.args[0] if err is not None and err.args else err)
        reason = cause.str() if isinstance(cause, KafkaError) else str(cause or "no answer")
        return TransientError(
            f"Kafka at {self.settings.bootstrap_servers} did not answer {doing} within "
            f"{self.settings.loader_kafka_timeout:.0f}s ({reason}); fix: start it (`mirador stack up`) "
            "or point MIRADOR_KAFKA_BOOTSTRAP at a broker, then run again"
        )

    def _on_client_error(self, err: KafkaError) -> None:
        """librdkafka's errors (it keeps reconnecting by itself): remembered, and logged once in 10 s."""
        self.last_error = err
        self._warn(err)

    def _on_error(self, message: Message) -> None:
        err: KafkaError = message.error()
        if err.fatal():
            raise TerminalError(f"Kafka consumer failed: {err}")
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            log.info("topic %s is gone; it will be unassigned", message.topic())
            return
        self._warn(err)

    def _warn(self, err: KafkaError) -> None:
        if time.monotonic() - self._last_error_log > 10:
            self._last_error_log = time.monotonic()
            log.warning("Kafka at %s: %s", self.settings.bootstrap_servers, err.str())

    def advance(self, positions: dict[TP, int]) -> None:
        for tp, offset in positions.items():
            if offset > self.next.get(tp, -1):
                self.next[tp] = offset

    def high_watermarks(self, cached: bool = True) -> dict[TP, int]:
        """End offsets of the assigned partitions; cached ones come with every fetch response."""
        high: dict[TP, int] = {}
        for topic, partition in self.assigned:
            try:
                _, end = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self.settings.loader_kafka_timeout, cached=cached
                )
            except KafkaException as err:
                if cached:
                    continue
                raise self.unreachable(f"with the end of {topic}[{partition}]", err) from err
            if end is not None and end >= 0:
                high[(topic, partition)] = end
        return high

    def position(self, tp: TP) -> int:
        return self.next.get(tp, self.stored.get(tp, 0))

    def lag(self, high: dict[TP, int]) -> int:
        return sum(max(0, end - self.position(tp)) for tp, end in high.items())

    def caught_up_services(self, high: dict[TP, int]) -> set[str]:
        """Services every assigned partition of which has been read to its known end."""
        behind: set[str] = set()
        services: set[str] = set()
        for tp in self.assigned:
            service = service_of(tp[0])
            services.add(service)
            if tp not in high or self.position(tp) < high[tp]:
                behind.add(service)
        return services - behind

    def behind_topics(self, high: dict[TP, int]) -> set[str]:
        """Topics with a partition not yet read to its known end."""
        return {tp[0] for tp in self.assigned if tp not in high or self.position(tp) < high[tp]}

    def commit(self, positions: dict[TP, int], asynchronous: bool = True) -> None:
        """Tell Kafka how far the loader got, for lag dashboards; DuckDB holds the truth."""
        self.committed.update(positions)
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
            except KafkaException as err:
                log.debug("monitoring commit failed: %s", err)

    def commit_last(self) -> None:
        """Commit the last positions again and wait for it: closing may drop an asynchronous one."""
        self.commit(dict(self.committed), asynchronous=False)

    def close(self) -> None:
        self.consumer.close()


class _Debug(logging.LoggerAdapter):
    """Hands librdkafka's lines to `logger` at debug level, whatever level librdkafka gave them."""

    def log(self, level: int, msg: object, *args: object, **kwargs) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)

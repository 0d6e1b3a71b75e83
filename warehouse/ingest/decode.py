"""Decode Debezium envelopes (JSON converter, schemas on) into typed rows, grouped per raw table.

Every message of a table repeats the same ~80% of schema text. The decoder pays for a schema once:
its exact bytes key a cache of `TableSchema`s, each with a msgspec decoder made for that schema's
row. The fast path decodes a message with the last schema seen on its topic, skipping over the
schema text, and only compares those bytes to the cached ones; a changed schema takes the slow path
once. Messages that cannot be loaded become dead letters with their reason; the batch goes on.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa
from confluent_kafka import Message

from warehouse.ingest.catalog import Catalog, raw_table_name, service_of
from warehouse.ingest.connect_types import ColumnType, column_type, connect_type_names, describe, unmapped_column
from warehouse.ingest.exceptions import IncompatibleSchema, PoisonMessage, UnsupportedType

log = logging.getLogger(__name__)

OPERATIONS = frozenset("cudrt")
OLD_KEY_HEADER = "__debezium.oldkey"


class Source(msgspec.Struct, gc=False):
    lsn: int | None = None
    sequence: str | None = None
    txId: int | None = None  # Debezium's name
    ts_ms: int | None = None
    ts_us: int | None = None
    snapshot: str | None = None


class _Probe(msgspec.Struct, gc=False):
    schema: msgspec.Raw = msgspec.Raw()
    payload: msgspec.Raw = msgspec.Raw()


class _DataCollection(msgspec.Struct, gc=False):
    data_collection: str
    event_count: int


class _TransactionPayload(msgspec.Struct, gc=False):
    status: str
    id: str
    ts_ms: int
    event_count: int | None = None
    data_collections: list[_DataCollection] | None = None


class _TransactionEnvelope(msgspec.Struct, gc=False):
    payload: _TransactionPayload


class _HeartbeatPayload(msgspec.Struct, gc=False):
    ts_ms: int


class _HeartbeatEnvelope(msgspec.Struct, gc=False):
    payload: _HeartbeatPayload


_PROBE = msgspec.json.Decoder(_Probe)
_TRANSACTION = msgspec.json.Decoder(_TransactionEnvelope)
_HEARTBEAT = msgspec.json.Decoder(_HeartbeatEnvelope)
_ANY = msgspec.json.Decoder()


@dataclass(eq=False)
class TableSchema:
    """One schema version of one source table, decoded once and kept."""

    raw: msgspec.Raw
    table: str
    columns: list[tuple[str, ColumnType]]
    decoder: msgspec.json.Decoder | None
    empty_row: Any = None
    getters: list[operator.attrgetter] = field(default_factory=list)
    problem: str | None = None
    key_columns: list[str] | None = None
    """Primary-key columns, from the message key's schema; a delete's other columns are not data."""
    payload_decoder: msgspec.json.Decoder | None = None
    prefix: bytes = b""
    """`{"schema":<these bytes>,"payload":` as the JsonConverter writes it: a message starting with it
    has this schema, checked with one memcmp instead of a parse."""
    prefix_len: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    """Constant source defaults of plain columns; a column added later backfills older rows with it."""
    unmapped: dict[str, str] = field(default_factory=dict)
    """Columns of a type the loader cannot map -> that type; they land as their JSON text."""


class Group:
    """Events of one raw table under one schema from one topic, in offset order.

    The decoder appends payloads; `frames.convert` turns them into an Arrow chunk after every fetch,
    so a batch holds columns (about 300 bytes an event) rather than decoded objects (about 1,150).
    """

    __slots__ = (
        "schema",
        "topic",
        "payloads",
        "partitions",
        "offsets",
        "old_keys",
        "chunks",
        "rows",
        "max_lsn",
        "max_commit_us",
    )

    def __init__(self, schema: TableSchema, topic: str) -> None:
        self.schema, self.topic = schema, topic
        self.payloads: list = []
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.old_keys: dict[int, str] = {}
        """Index into `payloads` -> the previous key of a primary-key change's create half."""
        self.chunks: list[pa.RecordBatch] = []
        self.rows = 0
        """Events already in `chunks`."""
        self.max_lsn: int | None = None
        self.max_commit_us: int | None = None


@dataclass
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    stage: str = "decode"


@dataclass
class Transaction:
    service: str
    status: str
    id: str
    event_count: int | None
    data_collections: str | None
    ts_ms: int
    topic: str
    partition: int
    offset: int


@dataclass
class Batch:
    """What one batch of messages decoded to; positions are the next offsets to read."""

    groups: dict[tuple[str, int], Group] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    heartbeats: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0
    tombstones: int = 0
    value_bytes: int = 0
    held_bytes: int = 0
    """Bytes of the Arrow chunks built so far: what the batch holds in memory, schema text excluded."""

    @property
    def events(self) -> int:
        return sum(g.rows + len(g.offsets) for g in self.groups.values())

    def span(self) -> dict[str, str]:
        """`topic[partition]` -> `first..last` offsets, for error messages."""
        return offset_span(self.first_offsets, self.positions)


def offset_span(first_offsets: dict[tuple[str, int], int], positions: dict[tuple[str, int], int]) -> dict[str, str]:
    """`topic[partition]` -> `first..last` offsets of a batch that reads up to `positions`."""
    return {f"{t}[{p}]": f"{first_offsets.get((t, p), '?')}..{end - 1}" for (t, p), end in positions.items()}


class Decoder:
    """Turns messages into a `Batch`; keeps schema caches across batches."""

    def __init__(self, catalog: Catalog, refuse: frozenset[str] = frozenset()) -> None:
        self.catalog = catalog
        self.refuse = refuse
        """Connect types and logical names whose fields send their messages to the dead letters
        (`MIRADOR_LOADER_REFUSE_TYPES`)."""
        self._schemas: dict[bytes, TableSchema] = {}
        self._current: dict[str, TableSchema] = {}
        self._kinds: dict[str, str] = {}
        self._delete_lsn: dict[str, int | None] = {}

    def decode(self, messages: list[Message], batch: Batch) -> None:
        """Decode a chunk of messages into `batch`. The hot loop: per message only what must be."""
        positions, first, groups, kinds = batch.positions, batch.first_offsets, batch.groups, self._kinds
        size = tombstones = 0
        topic = partition = tp = kind = schema = group = None
        last = -1
        for msg in messages:
            offset = msg.offset()
            if msg.partition() != partition or msg.topic() != topic:
                if tp is not None:
                    positions[tp] = last + 1
                topic, partition = msg.topic(), msg.partition()
                tp = (topic, partition)
                first.setdefault(tp, offset)
                kind = kinds.get(topic) or self._kind(topic)
                schema, group = self._current.get(topic), None
            last = offset
            value = msg.value()
            if value is None:
                tombstones += 1
                continue
            size += len(value)
            if kind != "change":
                self._decode_other(kind, msg, value, batch)
                continue
            payload = None
            if schema is not None:
                if value.startswith(schema.prefix) and value[-1] == 125:  # ...,"payload":{...}}
                    # same schema bytes as last time: decode only the payload, never scan the schema
                    try:
                        payload = schema.payload_decoder.decode(memoryview(value)[schema.prefix_len : -1])
                    except msgspec.DecodeError:
                        payload = None
                if payload is None:  # another layout of the same JSON, or another schema
                    try:
                        envelope = schema.decoder.decode(value)
                        payload = envelope.payload if envelope.schema == schema.raw else None
                    except msgspec.DecodeError:
                        payload = None
            if payload is None:
                try:
                    schema, envelope = self._slow(msg, value)
                except PoisonMessage as poison:
                    batch.dead.append(DeadLetter(topic, partition, offset, msg.key(), value, poison.reason))
                    schema = self._current.get(topic)
                    continue
                payload = envelope.payload
            op = payload.op
            if op not in OPERATIONS:
                batch.dead.append(
                    DeadLetter(topic, partition, offset, msg.key(), value, f"unknown Debezium operation {op!r}")
                )
                continue
            if group is None or group.schema is not schema:
                group = groups.get((topic, id(schema)))
                if group is None:
                    group = groups[(topic, id(schema))] = Group(schema, topic)
            if op == "d":
                self._delete_lsn[topic] = payload.source.lsn
                if schema.key_columns is None:
                    schema.key_columns = _key_columns(msg.key())
            elif op == "c" and payload.source.lsn == self._delete_lsn.get(topic, -1):
                # the create half of a primary-key change shares its delete's LSN; only it has this header
                for name, header in msg.headers() or ():
                    if name == OLD_KEY_HEADER and header is not None:
                        group.old_keys[len(group.offsets)] = header.decode()
            group.payloads.append(payload)
            group.partitions.append(partition)
            group.offsets.append(offset)
        if tp is not None:
            positions[tp] = last + 1
        batch.messages += len(messages)
        batch.tombstones += tombstones
        batch.value_bytes += size

    def _kind(self, topic: str) -> str:
        if topic.startswith("__debezium-heartbeat."):
            kind = "heartbeat"
        elif topic.endswith(".transaction") and topic.count(".") == 1:
            kind = "transaction"
        else:
            kind = "change"
        self._kinds[topic] = kind
        return kind

    def _slow(self, msg: Message, value: bytes) -> tuple[TableSchema, Any]:
        """A message whose schema differs from its topic's last one: find or build its decoder."""
        try:
            probe = _PROBE.decode(value)
        except msgspec.ValidationError as err:
            raise PoisonMessage(f"not a Debezium envelope: {err}") from None
        except msgspec.DecodeError as err:
            raise PoisonMessage(f"not JSON: {err}") from None
        if not probe.schema or not probe.payload or bytes(probe.schema) == b"null":
            raise PoisonMessage(
                "not a Debezium envelope with schema: needs top-level `schema` and `payload` "
                "(JsonConverter with schemas.enable=true)"
            )
        key = bytes(probe.schema)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = self._build(msg.topic(), probe.schema)
        if schema.problem:
            raise PoisonMessage(schema.problem)
        try:
            envelope = schema.decoder.decode(value)
        except msgspec.DecodeError as err:
            raise PoisonMessage(f"value does not match its schema: {err}") from None
        self._current[msg.topic()] = schema
        return schema, envelope

    def _build(self, topic: str, raw: msgspec.Raw) -> TableSchema:
        try:
            table = raw_table_name(topic)
        except ValueError as err:
            return TableSchema(raw, "", [], None, problem=str(err))
        try:
            fields = _row_fields(_ANY.decode(raw))
            if self.refuse:
                _refuse(fields, self.refuse)
            columns, unmapped = [], {}
            for f in fields:
                try:
                    columns.append((f["field"], column_type(f)))
                except UnsupportedType:
                    columns.append((f["field"], unmapped_column(f["field"])))
                    unmapped[f["field"]] = describe(f)
            self.catalog.admit(table, columns)
        except IncompatibleSchema as err:
            # an unmapped type's JSON text cannot go into a column that held a mapped one: say which type
            unmapped_named = [
                f"field {n!r} has Connect type {k!r}, which the loader does not map" for n, k in unmapped.items()
            ]
            return TableSchema(raw, table, [], None, problem="; ".join([err.reason, *unmapped_named]))
        except PoisonMessage as err:
            return TableSchema(raw, table, [], None, problem=err.reason)
        for name, kind in unmapped.items():
            log.warning("raw.%s.%s: the loader does not map %s; the column lands as its JSON text", table, name, kind)
        schema = _table_schema(raw, table, columns)
        schema.unmapped = unmapped
        schema.defaults = {
            f["field"]: f["default"]
            for f, (_, c) in zip(fields, columns)
            if isinstance(f.get("default"), (str, int, float, bool))
            and c.convert is None
            and c.sql == "{c}"
            and not isinstance(c.arrow, pa.TimestampType)
            and c.duckdb in _PLAIN_DEFAULTS
        }
        return schema

    def _decode_other(self, kind: str, msg: Message, value: bytes, batch: Batch) -> None:
        topic = msg.topic()
        try:
            if kind == "heartbeat":
                ts_ms = _HEARTBEAT.decode(value).payload.ts_ms
                service = service_of(topic)
                batch.heartbeats[service] = max(ts_ms, batch.heartbeats.get(service, ts_ms))
                return
            tx = _TRANSACTION.decode(value).payload
        except msgspec.DecodeError as err:
            batch.dead.append(
                DeadLetter(
                    topic, msg.partition(), msg.offset(), msg.key(), value, f"not a Debezium {kind} message: {err}"
                )
            )
            return
        collections = None if tx.data_collections is None else msgspec.json.encode(tx.data_collections).decode()
        batch.transactions.append(
            Transaction(
                service_of(topic),
                tx.status,
                tx.id,
                tx.event_count,
                collections,
                tx.ts_ms,
                topic,
                msg.partition(),
                msg.offset(),
            )
        )


class _KeyProbe(msgspec.Struct, gc=False):
    schema: dict


_KEY = msgspec.json.Decoder(_KeyProbe)


def _key_columns(key: bytes | None) -> list[str] | None:
    if not key:
        return None
    try:
        fields = _KEY.decode(key).schema.get("fields") or []
    except msgspec.DecodeError:
        return None
    return [f["field"] for f in fields if isinstance(f, dict) and "field" in f] or None


def _refuse(fields: list[dict], refused: frozenset[str]) -> None:
    """Raise `PoisonMessage` naming the first field (or array element) whose type is refused."""
    for f in fields:
        schema, label = f, f["field"]
        while isinstance(schema, dict):
            names = connect_type_names(schema)
            if hit := names & refused:
                raise PoisonMessage(f"field {label!r} has type {min(hit)!r}, refused by MIRADOR_LOADER_REFUSE_TYPES")
            schema, label = schema.get("items"), f"{label}[]"


_PLAIN_DEFAULTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE", "BOOLEAN", "VARCHAR"}


def _row_fields(schema: dict) -> list[dict]:
    if not isinstance(schema, dict) or schema.get("type") != "struct":
        raise PoisonMessage("not a Debezium change envelope: its schema is not a struct")
    fields = {f.get("field"): f for f in schema.get("fields", []) if isinstance(f, dict)}
    row = fields.get("after") or fields.get("before")
    if row is None or "op" not in fields or "source" not in fields:
        raise PoisonMessage("not a Debezium change envelope: schema lacks before/after, source and op")
    return [f for f in row.get("fields", []) if isinstance(f, dict) and "field" in f]


def _table_schema(raw: msgspec.Raw, table: str, columns: list[tuple[str, ColumnType]]) -> TableSchema:
    """A msgspec decoder for exactly this schema: row fields typed, everything else skipped."""
    names = [f"c{i}" for i in range(len(columns))]
    row = msgspec.defstruct(
        "Row",
        [(n, c.spec if c.spec is msgspec.Raw else c.spec | None, None) for n, (_, c) in zip(names, columns)],
        rename=dict(zip(names, (name for name, _ in columns))),
        gc=False,
    )
    payload = msgspec.defstruct(
        "Payload",
        [("op", str), ("source", Source), ("before", row | None, None), ("after", row | None, None)],
        gc=False,
    )
    envelope = msgspec.defstruct("Envelope", [("schema", msgspec.Raw), ("payload", payload)], gc=False)
    prefix = b'{"schema":' + bytes(raw) + b',"payload":'
    return TableSchema(
        raw,
        table,
        columns,
        msgspec.json.Decoder(envelope),
        empty_row=row(),
        getters=[operator.attrgetter(n) for n in names],
        payload_decoder=msgspec.json.Decoder(payload),
        prefix=prefix,
        prefix_len=len(prefix),
    )

-- The first result of every command sent with an Idempotency-Key. In schema `mirador`, so not captured.
create table mirador.idempotency_keys (
    key          text        primary key,
    route        text        not null,
    request_hash bytea       not null,
    status       smallint,
    response     jsonb,
    txid         xid8        not null default pg_current_xact_id(),
    created_at   timestamptz not null default now()
);

comment on table mirador.idempotency_keys is
    'Claimed first in the command''s own transaction: a racing retry waits on the key, then replays.';

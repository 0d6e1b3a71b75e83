-- Stock is event-sourced: these events are the only record of it; there is no stock column anywhere.
-- One stream per product; (stream, version) is unique, so two writers appending the same next
-- version collide and the loser runs its command again on the new state.
create table stock_events (
    stream         uuid        not null references products (id),
    version        int         not null check (version > 0),
    event_type     text        not null check (event_type in ('StockIncreased', 'StockDecreased')),
    quantity       int         not null check (quantity > 0),
    reason         text,
    command_id     text        not null,
    occurred_at    timestamptz not null default now(),
    schema_version smallint    not null default 1,
    primary key (stream, version)
);

-- Append-only, enforced by the database for every role, the owner and superusers included.
create function refuse_stock_event_change() returns trigger language plpgsql as $$
begin
    raise exception 'stock_events is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege',
              hint = 'correct stock with a new StockIncreased or StockDecreased event';
end
$$;

create trigger stock_events_append_only before update or delete on stock_events
    for each row execute function refuse_stock_event_change();
create trigger stock_events_no_truncate before truncate on stock_events
    for each statement execute function refuse_stock_event_change();

revoke update, delete, truncate on stock_events from public;
revoke update, delete, truncate on stock_events from current_user;

-- Snapshots only shorten the fold; they are derived, so they live outside the captured schema.
create table mirador.stock_snapshots (
    stream   uuid        primary key,
    version  int         not null,
    on_hand  bigint      not null,
    taken_at timestamptz not null default now()
);

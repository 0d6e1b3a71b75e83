-- Invoices, captured by CDC. order_id names an order of the orders service: no cross-service foreign
-- key and no call to that service; the warehouse joins invoices to orders.
create table invoices (
    id           uuid          primary key,
    order_id     uuid          not null,
    amount       numeric(12,2) not null check (amount > 0),
    currency     text          not null check (currency ~ '^[A-Z]{3}$'),
    due_date     date          not null,
    document_url text          not null,
    status       text          not null check (status in ('issued', 'paid', 'void')),
    version      int           not null default 1,
    issued_at    timestamptz   not null default now(),
    paid_at      timestamptz,
    voided_at    timestamptz,
    updated_at   timestamptz   not null default now()
);

-- One invoice per order until it is voided; a voided invoice may be replaced by a new one.
create unique index invoices_open_per_order on invoices (order_id) where status <> 'void';

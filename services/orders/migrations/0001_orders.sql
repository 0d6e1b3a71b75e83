-- Orders and their lines, captured by CDC. customer_id and product_id name aggregates of other
-- services: no foreign key crosses a service boundary; the warehouse joins them.
create table orders (
    id            uuid        primary key,
    customer_id   uuid        not null,
    currency      text        not null check (currency ~ '^[A-Z]{3}$'),
    status        text        not null check (status in ('placed', 'paid', 'shipped', 'cancelled')),
    last_line_no  int         not null,
    cancel_reason text,
    version       int         not null default 1,
    placed_at     timestamptz not null default now(),
    paid_at       timestamptz,
    shipped_at    timestamptz,
    cancelled_at  timestamptz,
    updated_at    timestamptz not null default now()
);

create table order_lines (
    order_id   uuid          not null references orders (id),
    line_no    int           not null,
    product_id uuid          not null,
    quantity   int           not null check (quantity > 0),
    unit_price numeric(12,2) not null check (unit_price >= 0),
    primary key (order_id, line_no)
);

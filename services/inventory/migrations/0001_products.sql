-- The product catalogue: plain rows, captured by CDC. Products are retired, never deleted.
create table products (
    id         uuid          primary key,
    sku        text          not null constraint products_sku_key unique,
    name       text          not null,
    list_price numeric(12,2) not null check (list_price >= 0),
    currency   text          not null check (currency ~ '^[A-Z]{3}$'),
    retired_at timestamptz,
    version    int           not null default 1,
    created_at timestamptz   not null default now(),
    updated_at timestamptz   not null default now()
);

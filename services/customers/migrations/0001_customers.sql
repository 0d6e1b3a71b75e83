-- Customers, captured by CDC. A deleted customer is a real DELETE: the delete event flows downstream.
create table customers (
    id         uuid        primary key,
    email      text        not null,
    name       text        not null,
    country    text        not null check (country ~ '^[A-Z]{2}$'),
    version    int         not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create unique index customers_email_key on customers (lower(email));

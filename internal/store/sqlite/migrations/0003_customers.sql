-- Customers and their wallet identities (the identity bridge). One identity (a buyer as one
-- wallet app knows them) belongs to at most one customer of a merchant in a mode, and a customer
-- has at most one identity per wallet app, so that a payment knows whom to charge.

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX customers_merchant ON customers (merchant_id, livemode, created_at DESC, id DESC);

CREATE TABLE customer_identities (
    merchant_id TEXT NOT NULL,
    livemode    INTEGER NOT NULL,
    provider    TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    subject     TEXT NOT NULL, -- what the wallet knows the buyer by: openid (WeChat), user_id or else open_id (Alipay)
    customer_id TEXT NOT NULL REFERENCES customers (id),
    openid      TEXT NOT NULL,
    unionid     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    open_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, livemode, provider, app_id, subject),
    UNIQUE (customer_id, provider, app_id),
    CHECK (subject <> '')
) STRICT, WITHOUT ROWID;

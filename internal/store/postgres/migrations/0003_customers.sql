-- Customers and their wallet identities (the identity bridge). One identity (a buyer as one
-- wallet app knows them) belongs to at most one customer of a merchant in a mode, and a customer
-- has at most one identity per wallet app, so that a payment knows whom to charge.

CREATE TABLE customers (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    livemode    boolean NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX customers_merchant ON customers (merchant_id, livemode, created_at DESC, id DESC);

CREATE TABLE customer_identities (
    merchant_id text NOT NULL,
    livemode    boolean NOT NULL,
    provider    text NOT NULL,
    app_id      text NOT NULL,
    subject     text NOT NULL, -- what the wallet knows the buyer by: openid (WeChat), user_id or else open_id (Alipay)
    customer_id text NOT NULL REFERENCES customers (id),
    openid      text NOT NULL,
    unionid     text NOT NULL,
    user_id     text NOT NULL,
    open_id     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, livemode, provider, app_id, subject),
    UNIQUE (customer_id, provider, app_id),
    CHECK (subject <> '')
);

-- Hutong's first tables. Conventions for every later migration:
--   times are timestamptz (microseconds, written in UTC); JSON is jsonb, except where the
--   exact bytes matter (events.data: json keeps them); ids are text; money is bigint minor units.
-- Tables are created in the connection's search_path, so that tests can use a schema each.

CREATE TABLE merchants (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    livemode    boolean NOT NULL,
    prefix      text NOT NULL,
    hash        bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at DESC, id DESC);

CREATE TABLE payments (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL REFERENCES merchants (id),
    livemode        boolean NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    amount          bigint NOT NULL,
    amount_refunded bigint NOT NULL,
    currency        text NOT NULL,
    description     text NOT NULL,
    reference       text NOT NULL,
    provider        text NOT NULL,  -- '' until the buyer picks a wallet
    channel         text NOT NULL,
    out_trade_no    text NOT NULL,  -- provider_ref's, kept apart for the unique index
    provider_ref    jsonb NOT NULL,
    next_action     jsonb,
    checkout_url    text NOT NULL,
    customer_id     text NOT NULL,
    payer           jsonb,
    return_url      text NOT NULL,
    metadata        jsonb,
    cancel_reason   text NOT NULL,
    failure_code    text NOT NULL,
    failure_message text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    paid_at         timestamptz,
    -- The last line of defence against over-refunds: the store refuses what the domain missed.
    CONSTRAINT payments_amounts CHECK (amount > 0 AND amount_refunded BETWEEN 0 AND amount)
);
CREATE UNIQUE INDEX payments_out_trade_no ON payments (provider, out_trade_no) WHERE out_trade_no <> '';
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_merchant_reference ON payments (merchant_id, reference);

CREATE TABLE refunds (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL REFERENCES merchants (id),
    payment_id      text NOT NULL REFERENCES payments (id),
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    reason          text NOT NULL,
    provider        text NOT NULL,
    out_refund_no   text NOT NULL,
    provider_ref    jsonb NOT NULL,
    metadata        jsonb,
    failure_code    text NOT NULL,
    failure_message text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    succeeded_at    timestamptz
);
CREATE UNIQUE INDEX refunds_out_refund_no ON refunds (provider, out_refund_no) WHERE out_refund_no <> '';
CREATE INDEX refunds_payment ON refunds (payment_id, created_at DESC, id DESC);

-- The outbox: every event is written in the transaction of the change it reports. seq orders
-- insertion, not commit (concurrent transactions commit out of order): readers that follow
-- the table must allow for that.
CREATE TABLE events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    merchant_id text NOT NULL REFERENCES merchants (id),
    type        text NOT NULL,
    data        json NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX events_merchant_created ON events (merchant_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    merchant_id     text NOT NULL REFERENCES merchants (id),
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,
    status          integer NOT NULL, -- 0 while the first request is in flight
    body            bytea,
    created_at      timestamptz NOT NULL,
    locked_at       timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

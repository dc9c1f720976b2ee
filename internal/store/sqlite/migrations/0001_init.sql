-- Hutong's first tables. Conventions for every later migration:
--   times are INTEGER microseconds since the Unix epoch, UTC (NULL when unset);
--   JSON is TEXT; ids are TEXT; money is INTEGER minor units; tables are STRICT.

CREATE TABLE merchants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    livemode    INTEGER NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at DESC, id DESC);

CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    livemode        INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    amount          INTEGER NOT NULL,
    amount_refunded INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    description     TEXT NOT NULL,
    reference       TEXT NOT NULL,
    provider        TEXT NOT NULL,  -- '' until the buyer picks a wallet
    channel         TEXT NOT NULL,
    out_trade_no    TEXT NOT NULL,  -- provider_ref's, kept apart for the unique index
    provider_ref    TEXT NOT NULL,
    next_action     TEXT,
    checkout_url    TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    payer           TEXT,
    return_url      TEXT NOT NULL,
    metadata        TEXT,
    cancel_reason   TEXT NOT NULL,
    failure_code    TEXT NOT NULL,
    failure_message TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    paid_at         INTEGER,
    -- The last line of defence against over-refunds: the store refuses what the domain missed.
    CHECK (amount > 0 AND amount_refunded BETWEEN 0 AND amount)
) STRICT;
CREATE UNIQUE INDEX payments_out_trade_no ON payments (provider, out_trade_no) WHERE out_trade_no <> '';
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_merchant_reference ON payments (merchant_id, reference);

CREATE TABLE refunds (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    provider        TEXT NOT NULL,
    out_refund_no   TEXT NOT NULL,
    provider_ref    TEXT NOT NULL,
    metadata        TEXT,
    failure_code    TEXT NOT NULL,
    failure_message TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    succeeded_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX refunds_out_refund_no ON refunds (provider, out_refund_no) WHERE out_refund_no <> '';
CREATE INDEX refunds_payment ON refunds (payment_id, created_at DESC, id DESC);

-- The outbox: every event is written in the transaction of the change it reports. seq is the
-- commit order (one writer), for readers that follow the table.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX events_merchant_created ON events (merchant_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    status          INTEGER NOT NULL, -- 0 while the first request is in flight
    body            BLOB,
    created_at      INTEGER NOT NULL,
    locked_at       INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, idempotency_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

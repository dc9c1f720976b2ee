-- Truthful payment state: the mode of refunds and events, merchant webhook endpoints and their
-- delivery attempts, and the wallet notifications that were rejected. River's own tables (the
-- job queue) are created by River's migrations, run beside these.

-- Refunds and events carry their payment's mode, so that test keys never see live objects.
ALTER TABLE refunds ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0;
UPDATE refunds SET livemode = (SELECT p.livemode FROM payments p WHERE p.id = refunds.payment_id);
ALTER TABLE events ADD COLUMN livemode INTEGER NOT NULL DEFAULT 0;
UPDATE events SET livemode = coalesce(json_extract(data, '$.livemode'), 0);

DROP INDEX payments_merchant_created;
CREATE INDEX payments_merchant_mode_created ON payments (merchant_id, livemode, created_at DESC, id DESC);
DROP INDEX events_merchant_created;
CREATE INDEX events_merchant_mode_created ON events (merchant_id, livemode, created_at DESC, id DESC);

-- A merchant's webhook receivers. The secrets sign (HMAC) and so are kept as they are.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    merchant_id                TEXT NOT NULL REFERENCES merchants (id),
    livemode                   INTEGER NOT NULL,
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL, -- JSON array of event types; [] means every type
    secret                     TEXT NOT NULL,
    previous_secret            TEXT NOT NULL,
    previous_secret_expires_at INTEGER,
    disabled_reason            TEXT NOT NULL,
    disabled_at                INTEGER,       -- NULL while enabled
    created_at                 INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at, id);

-- Every delivery attempt, kept after its endpoint is deleted (no foreign key to it).
CREATE TABLE webhook_attempts (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL,
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    number          INTEGER NOT NULL,
    status_code     INTEGER NOT NULL, -- 0 when no response arrived
    error           TEXT NOT NULL,
    duration_us     INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    next_attempt_at INTEGER
) STRICT;
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, at, number, id);

-- Wallet notifications that changed nothing (forged, stale, mismatched, unknown), for operators.
-- fields holds identifiers only, never bodies or signatures.
CREATE TABLE rejected_notifications (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    kind     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    fields   TEXT NOT NULL, -- JSON object of strings
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX rejected_notifications_at ON rejected_notifications (at);

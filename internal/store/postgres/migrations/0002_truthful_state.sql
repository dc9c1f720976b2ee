-- Truthful payment state: the mode of refunds and events, merchant webhook endpoints and their
-- delivery attempts, and the wallet notifications that were rejected. River's own tables (the
-- job queue) are created by River's migrations, run beside these.

-- Refunds and events carry their payment's mode, so that test keys never see live objects.
ALTER TABLE refunds ADD COLUMN livemode boolean NOT NULL DEFAULT false;
UPDATE refunds r SET livemode = p.livemode FROM payments p WHERE p.id = r.payment_id;
ALTER TABLE events ADD COLUMN livemode boolean NOT NULL DEFAULT false;
UPDATE events SET livemode = coalesce((data::jsonb ->> 'livemode')::boolean, false);

DROP INDEX payments_merchant_created;
CREATE INDEX payments_merchant_mode_created ON payments (merchant_id, livemode, created_at DESC, id DESC);
DROP INDEX events_merchant_created;
CREATE INDEX events_merchant_mode_created ON events (merchant_id, livemode, created_at DESC, id DESC);

-- A merchant's webhook receivers. The secrets sign (HMAC) and so are kept as they are.
CREATE TABLE webhook_endpoints (
    id                         text PRIMARY KEY,
    merchant_id                text NOT NULL REFERENCES merchants (id),
    livemode                   boolean NOT NULL,
    url                        text NOT NULL,
    events                     jsonb NOT NULL, -- array of event types; [] means every type
    secret                     text NOT NULL,
    previous_secret            text NOT NULL,
    previous_secret_expires_at timestamptz,
    disabled_reason            text NOT NULL,
    disabled_at                timestamptz,    -- NULL while enabled
    created_at                 timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at, id);

-- Every delivery attempt, kept after its endpoint is deleted (no foreign key to it).
CREATE TABLE webhook_attempts (
    id              text PRIMARY KEY,
    event_id        text NOT NULL REFERENCES events (id),
    endpoint_id     text NOT NULL,
    merchant_id     text NOT NULL REFERENCES merchants (id),
    number          integer NOT NULL,
    status_code     integer NOT NULL, -- 0 when no response arrived
    error           text NOT NULL,
    duration_us     bigint NOT NULL,
    at              timestamptz NOT NULL,
    next_attempt_at timestamptz
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, at, number, id);

-- Wallet notifications that changed nothing (forged, stale, mismatched, unknown), for operators.
-- fields holds identifiers only, never bodies or signatures.
CREATE TABLE rejected_notifications (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    kind     text NOT NULL,
    reason   text NOT NULL,
    fields   jsonb NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX rejected_notifications_at ON rejected_notifications (at);

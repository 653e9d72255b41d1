-- Partner webhooks (Standard Webhooks): endpoints per organization, one delivery per endpoint and
-- item change (its id is the webhook-id, the same on every try), and every try logged.

ALTER TABLE items ADD COLUMN channels text[] NOT NULL DEFAULT '{inbox}';

CREATE TABLE webhook_endpoints (
    id                   uuid        PRIMARY KEY,
    org_id               uuid        NOT NULL,
    url                  text        NOT NULL,
    -- "whsec_" + base64 of 32 random bytes; shown to the creator once.
    secret               text        NOT NULL,
    -- Event types sent; empty for all.
    event_types          text[]      NOT NULL DEFAULT '{}',
    enabled              boolean     NOT NULL DEFAULT true,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    disabled_at          timestamptz,
    version              bigint      NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES webhook_endpoints (id),
    item_id         uuid        NOT NULL REFERENCES items (id),
    item_version    bigint      NOT NULL,
    patient_id      uuid        NOT NULL,
    event_type      text        NOT NULL,
    -- The exact JSON body sent (ids, roles and states only).
    payload         text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (endpoint_id, item_id, item_version)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
    delivery_id uuid        NOT NULL REFERENCES webhook_deliveries (id),
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer     NOT NULL,
    error       text        NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- A resend grants a delivery another round of tries: failed once its tries reach this budget (NULL:
-- the configured maximum).
ALTER TABLE webhook_deliveries ADD COLUMN attempt_budget integer;

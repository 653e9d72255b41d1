-- Email and SMS notices: one per item change, channel and address, sent by the message dispatcher
-- with retries; the provider's receipt (message id) kept when it gives one.

CREATE TABLE outbound_messages (
    id              uuid        PRIMARY KEY,
    item_id         uuid        NOT NULL REFERENCES items (id),
    item_version    bigint      NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'sms')),
    -- The member's subject and address at the time (rosters change).
    member          text        NOT NULL,
    address         text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text        NOT NULL DEFAULT '',
    receipt         text        NOT NULL DEFAULT '',
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (item_id, item_version, channel, address)
);
CREATE INDEX outbound_messages_due ON outbound_messages (next_attempt_at) WHERE status = 'pending';

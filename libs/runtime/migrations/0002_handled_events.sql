-- Event ids a consumer has handled, recorded in the same transaction as the handler's effect so a
-- redelivered event has no second effect.
CREATE TABLE handled_events (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX handled_events_handled_at ON handled_events (handled_at);

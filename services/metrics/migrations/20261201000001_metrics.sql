-- Every event the measures read, once (by event id), with its aggregate and version so a loop's
-- timeline is rebuilt in order whatever order the events arrived in. The payload is the encoded
-- event; measures decode what they need. Replaying the stream into an empty schema rebuilds it.
CREATE TABLE loop_events (
    event_id          uuid        PRIMARY KEY,
    event_type        text        NOT NULL,
    org_id            uuid,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    occurred_at       timestamptz NOT NULL,
    payload           bytea       NOT NULL
);
CREATE INDEX loop_events_by_type ON loop_events (event_type, org_id, occurred_at);
CREATE INDEX loop_events_by_aggregate ON loop_events (aggregate_id, aggregate_version);

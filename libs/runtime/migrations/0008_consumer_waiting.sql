-- Per-aggregate order across retries: an event a consumer failed to apply is recorded here with its
-- failure count, and a later event of the same aggregate waits behind it (recorded too) until the
-- earlier one is applied or dead-lettered. Rows leave when their event is applied or dead-lettered.
CREATE TABLE consumer_waiting (
    consumer     text        NOT NULL,
    aggregate_id uuid        NOT NULL,
    stream_seq   bigint      NOT NULL,
    event_id     uuid        NOT NULL,
    failures     integer     NOT NULL DEFAULT 0,
    since        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, aggregate_id, stream_seq)
);
CREATE INDEX consumer_waiting_since ON consumer_waiting (since);

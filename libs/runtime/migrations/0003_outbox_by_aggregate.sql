-- The relay derives the subject from the event type and the configured prefix; a stored subject
-- would go stale when the prefix changes.
ALTER TABLE outbox DROP COLUMN subject;
-- The relay's "earlier unpublished event of the same aggregate" check must stay cheap while a large
-- backlog drains (after a NATS outage).
CREATE INDEX outbox_unpublished_by_aggregate ON outbox (aggregate_id, seq) WHERE published_at IS NULL;

-- Every event names a version of its aggregate that no other event has: an overdue report is a
-- change of its loop and takes the next version, a pathway firing is an aggregate of its own.
-- Published rows that broke the rule before it was enforced are already on the stream (the outbox
-- keeps published rows only for a retention window), so the later copies are dropped here.
DELETE FROM outbox a
 USING outbox b
 WHERE a.aggregate_id = b.aggregate_id
   AND a.aggregate_version = b.aggregate_version
   AND a.seq > b.seq
   AND a.published_at IS NOT NULL;
CREATE UNIQUE INDEX outbox_aggregate_version ON outbox (aggregate_id, aggregate_version);

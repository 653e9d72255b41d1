-- The organization that owns each request (the one that created it), so sweeper events name a real
-- organization for escalation instead of none.
ALTER TABLE requests ADD COLUMN org_id uuid;

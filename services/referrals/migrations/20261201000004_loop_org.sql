-- The organization that owns each order and result (the one that placed the order), so overdue
-- events name a real organization for escalation instead of none.
ALTER TABLE orders ADD COLUMN org_id uuid;
ALTER TABLE results ADD COLUMN org_id uuid;

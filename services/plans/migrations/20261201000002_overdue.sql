-- Overdue detection for plans' loops: a task is reported once per stage (its status) that passes
-- its due time; a handoff once when its acknowledge-by time passes unacknowledged.
ALTER TABLE tasks ADD COLUMN overdue_stage text;
CREATE INDEX tasks_overdue_candidates ON tasks (due_at)
    WHERE status IN ('requested', 'accepted', 'in_progress', 'on_hold');

ALTER TABLE handoffs ADD COLUMN acknowledge_by timestamptz;
UPDATE handoffs SET acknowledge_by = sent_at + interval '24 hours' WHERE acknowledge_by IS NULL;
ALTER TABLE handoffs ALTER COLUMN acknowledge_by SET NOT NULL;
ALTER TABLE handoffs ADD COLUMN overdue_reported_at timestamptz;
CREATE INDEX handoffs_overdue_candidates ON handoffs (acknowledge_by)
    WHERE acknowledged_at IS NULL AND overdue_reported_at IS NULL;

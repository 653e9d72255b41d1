-- Unacknowledged handoffs are listed by their acknowledge-by time (overdue first), per receiving role
-- and per patient, as the gateway's worklist and summary read them.
CREATE INDEX handoffs_unacknowledged_by_due ON handoffs (to_role, acknowledge_by, id) WHERE acknowledged_at IS NULL;
CREATE INDEX handoffs_unacknowledged_by_patient ON handoffs (patient_id, acknowledge_by, id) WHERE acknowledged_at IS NULL;

-- "Tell the patient when the next update comes": a promised update that passes without the
-- request moving is reported once per promised time.
ALTER TABLE requests ADD COLUMN update_reported_for timestamptz;
CREATE INDEX requests_next_update ON requests (next_patient_update_at)
    WHERE next_patient_update_at IS NOT NULL;

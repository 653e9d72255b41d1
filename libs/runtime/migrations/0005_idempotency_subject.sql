-- What a remembered write touched, so a replay is audited against the same patient and record.
ALTER TABLE idempotency_keys ADD COLUMN patient_id uuid;
ALTER TABLE idempotency_keys ADD COLUMN target_id uuid;

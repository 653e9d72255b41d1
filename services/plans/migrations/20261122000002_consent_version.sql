-- Consents are versioned like every other aggregate (a stale revoke is ABORTED).
ALTER TABLE consents ADD COLUMN version bigint NOT NULL DEFAULT 1;
CREATE INDEX consents_patient_page ON consents (patient_id, granted_at, id);

-- A patient's open items in an organization's inbox, for the gateway's patient summary.
CREATE INDEX items_open_by_patient ON items (org_id, patient_id, created_at, id) WHERE status = 'open';

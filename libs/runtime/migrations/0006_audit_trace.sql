-- The trace of the call that wrote each audit row, so an auditor can follow it across services.
ALTER TABLE audit_log ADD COLUMN trace_id text;

-- Appeals past their due time are reported once per deadline too.
CREATE INDEX requests_appeal_overdue ON requests (due_at, id)
    WHERE status = 'appealed' AND overdue_reported_for IS DISTINCT FROM due_at;

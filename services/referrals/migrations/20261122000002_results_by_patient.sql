-- Patient worklists read the open_loops view, whose results branch filters by patient.
CREATE INDEX results_patient ON results (patient_id) WHERE status = 'routed' AND flag <> 'normal';

-- The prior_auth schema: one row per prior authorization request, tracked like any open loop.

CREATE TABLE requests (
    id                     uuid PRIMARY KEY,
    patient_id             uuid        NOT NULL,
    linked_kind            integer     NOT NULL DEFAULT 0,
    linked_id              text        NOT NULL DEFAULT '',
    payer_id               text        NOT NULL DEFAULT '',
    plan_member_id         text        NOT NULL DEFAULT '',
    service_lines          jsonb       NOT NULL DEFAULT '[]',
    diagnosis_codes        text[]      NOT NULL DEFAULT '{}',
    urgency                integer     NOT NULL DEFAULT 0,
    urgency_reason         text        NOT NULL DEFAULT '',
    packet                 jsonb       NOT NULL DEFAULT '{}',
    owner_role             integer     NOT NULL CHECK (owner_role > 0),
    next_action            text        NOT NULL DEFAULT '',
    next_patient_update_at timestamptz,
    status                 text        NOT NULL CHECK (status IN ('draft', 'submitted', 'pended', 'approved',
        'partially_approved', 'denied', 'appealed', 'appeal_approved', 'appeal_denied', 'cancelled')),
    due_at                 timestamptz,
    first_submitted_at     timestamptz,
    submitted_at           timestamptz,
    decision_due_at        timestamptz,
    -- The decision deadline an overdue event was emitted for; a new deadline can be reported again.
    overdue_reported_for   timestamptz,
    extensions             jsonb       NOT NULL DEFAULT '[]',
    information_requested  text        NOT NULL DEFAULT '',
    decision               jsonb,
    appeal_reason          text        NOT NULL DEFAULT '',
    appeal_decision        jsonb,
    valid_to               timestamptz,
    expiry_reported        boolean     NOT NULL DEFAULT false,
    status_reason          text        NOT NULL DEFAULT '',
    version                bigint      NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX requests_patient ON requests (patient_id);
CREATE INDEX requests_payer ON requests (payer_id, due_at, id);
CREATE INDEX requests_by_status ON requests (status, due_at, id);
CREATE INDEX requests_open_by_role ON requests (owner_role, due_at, id)
    WHERE status IN ('draft', 'submitted', 'pended', 'denied', 'appealed');
-- Sweepers: decisions past due not yet reported, and approvals about to expire not yet reported.
CREATE INDEX requests_decision_overdue ON requests (decision_due_at, id)
    WHERE status = 'submitted' AND overdue_reported_for IS DISTINCT FROM decision_due_at;
CREATE INDEX requests_expiring ON requests (valid_to, id)
    WHERE status IN ('approved', 'partially_approved', 'appeal_approved') AND NOT expiry_reported;

-- The referrals schema: referrals with their timeline, orders, results, pathway rules.
-- Role, urgency, kind and setting columns hold careloop proto enum numbers; statuses are text.

CREATE TABLE referrals (
    id               uuid PRIMARY KEY,
    patient_id       uuid        NOT NULL,
    from_org_id      uuid        NOT NULL,
    from_clinician   text        NOT NULL,
    to_org_id        uuid,
    to_specialty     text        NOT NULL DEFAULT '',
    service_type     text        NOT NULL,
    reason           text        NOT NULL,
    urgency          integer     NOT NULL,
    owner_role       integer     NOT NULL CHECK (owner_role > 0),
    clinical_context text        NOT NULL DEFAULT '',
    status           text        NOT NULL CHECK (status IN
        ('placed', 'accepted', 'declined', 'scheduled', 'rescheduled', 'no_show', 'seen', 'note_received', 'cancelled')),
    stage_due_at     timestamptz,
    -- Set when the current stage's overdue event was emitted (reset on every move), so each stage
    -- is reported once.
    overdue_stage    text,
    appointment_at   timestamptz,
    location         text        NOT NULL DEFAULT '',
    reschedule_count integer     NOT NULL DEFAULT 0,
    status_reason    text        NOT NULL DEFAULT '',
    note_reference   text        NOT NULL DEFAULT '',
    source_rule_id   uuid,
    source_event_id  uuid,
    version          bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK ((to_org_id IS NULL) <> (to_specialty = ''))
);
-- The sweeper's query: open loops past due whose current stage was not reported yet.
CREATE INDEX referrals_open_due ON referrals (stage_due_at, id)
    WHERE status NOT IN ('declined', 'note_received', 'cancelled') AND overdue_stage IS NULL;
CREATE INDEX referrals_patient ON referrals (patient_id);
-- One pathway firing creates one referral, however often its event is delivered.
CREATE UNIQUE INDEX referrals_from_pathway ON referrals (source_rule_id, source_event_id)
    WHERE source_rule_id IS NOT NULL;

CREATE TABLE referral_timeline (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id uuid        NOT NULL REFERENCES referrals (id),
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    from_status text        NOT NULL,
    to_status   text        NOT NULL,
    reason      text        NOT NULL DEFAULT ''
);
CREATE INDEX referral_timeline_referral ON referral_timeline (referral_id, id);

CREATE TABLE orders (
    id                        uuid PRIMARY KEY,
    patient_id                uuid        NOT NULL,
    kind                      text        NOT NULL CHECK (kind IN ('lab', 'imaging', 'transport', 'home_health', 'dme')),
    test_code                 text        NOT NULL DEFAULT '',
    description               text        NOT NULL DEFAULT '',
    setting                   integer     NOT NULL,
    owner_role                integer     NOT NULL CHECK (owner_role > 0),
    due_at                    timestamptz,
    overdue_stage             text,
    status                    text        NOT NULL CHECK (status IN
        ('placed', 'scheduled', 'confirmed', 'completed', 'closed', 'cancelled')),
    status_reason             text        NOT NULL DEFAULT '',
    scheduled_at              timestamptz,
    window_start              timestamptz,
    window_end                timestamptz,
    home_health               boolean     NOT NULL DEFAULT false,
    duplicate_override_reason text        NOT NULL DEFAULT '',
    source_rule_id            uuid,
    source_event_id           uuid,
    version                   bigint      NOT NULL,
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz NOT NULL,
    CHECK (window_end IS NULL OR window_start IS NULL OR window_end > window_start)
);
CREATE INDEX orders_open_due ON orders (due_at, id)
    WHERE status NOT IN ('closed', 'cancelled') AND overdue_stage IS NULL;
CREATE INDEX orders_patient ON orders (patient_id);
-- The duplicate-test check: same patient and test code, newest first.
CREATE INDEX orders_duplicate_check ON orders (patient_id, test_code, created_at DESC)
    WHERE kind IN ('lab', 'imaging') AND status <> 'cancelled';
CREATE UNIQUE INDEX orders_from_pathway ON orders (source_rule_id, source_event_id)
    WHERE source_rule_id IS NOT NULL;

CREATE TABLE results (
    id              uuid PRIMARY KEY,
    order_id        uuid        NOT NULL REFERENCES orders (id),
    patient_id      uuid        NOT NULL,
    flag            text        NOT NULL CHECK (flag IN ('normal', 'abnormal', 'critical')),
    code            text        NOT NULL,
    summary         text        NOT NULL DEFAULT '',
    routed_to_role  integer     NOT NULL,
    backup_role     integer     NOT NULL,
    due_at          timestamptz,
    overdue_stage   text,
    status          text        NOT NULL CHECK (status IN ('routed', 'acknowledged')),
    acknowledged_by text,
    acknowledged_at timestamptz,
    action_taken    text        NOT NULL DEFAULT '',
    version         bigint      NOT NULL,
    received_at     timestamptz NOT NULL
);
CREATE INDEX results_open_due ON results (due_at, id)
    WHERE status = 'routed' AND flag <> 'normal' AND overdue_stage IS NULL;
CREATE INDEX results_order ON results (order_id);

-- Every open loop of this service in one shape: worklists by patient, role or status.
CREATE VIEW open_loops AS
    SELECT 2 AS kind, id, patient_id, status, owner_role, 0 AS backup_role, stage_due_at AS due_at,
           service_type AS label
    FROM referrals WHERE status NOT IN ('declined', 'note_received', 'cancelled')
    UNION ALL
    SELECT 3, id, patient_id, status, owner_role, 0, due_at,
           CASE WHEN test_code <> '' THEN test_code ELSE kind END
    FROM orders WHERE status NOT IN ('closed', 'cancelled')
    UNION ALL
    SELECT 4, id, patient_id, status, routed_to_role, backup_role, due_at, code
    FROM results WHERE status = 'routed' AND flag <> 'normal';

CREATE TABLE pathway_rules (
    id             uuid PRIMARY KEY,
    name           text        NOT NULL,
    event_type     text        NOT NULL,
    conditions     jsonb       NOT NULL DEFAULT '{}',
    action         text        NOT NULL CHECK (action IN ('create_order', 'create_referral')),
    order_kind     text,
    service_type   text        NOT NULL DEFAULT '',
    owner_role     integer     NOT NULL CHECK (owner_role > 0),
    due_in_minutes integer     NOT NULL CHECK (due_in_minutes > 0),
    enabled        boolean     NOT NULL DEFAULT true,
    version        bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pathway_rules_event ON pathway_rules (event_type) WHERE enabled;

-- The default pathways (DOMAIN.md: triggers instead of reminders).
-- A hospital-to-home transition starting creates the transport booking for the discharge
-- (owner: discharge planner = 10, due in 4 h).
INSERT INTO pathway_rules (id, name, event_type, conditions, action, order_kind, owner_role, due_in_minutes)
VALUES ('01920000-0000-7000-8000-0000000000a1', 'discharge home: book transport', 'plans.transition.started',
        '{"from_setting": "hospital", "to_setting": "home"}', 'create_order', 'transport', 10, 240);
-- A confirmed transport flagged for home health creates the home-health referral
-- (owner: care manager = 5, due in 24 h).
INSERT INTO pathway_rules (id, name, event_type, conditions, action, service_type, owner_role, due_in_minutes)
VALUES ('01920000-0000-7000-8000-0000000000a2', 'transport confirmed: refer to home health',
        'referrals.order.status_changed',
        '{"order_kind": "transport", "to_status": "confirmed", "home_health": "true"}', 'create_referral',
        'home health', 5, 1440);

-- The plans schema: patients, care plans, care teams, consents, tasks, SBAR handoffs, transitions.
-- Role and setting columns hold careloop.common.v1 / plans.v1 enum numbers (stable by proto rules).

CREATE TABLE patients (
    id              uuid PRIMARY KEY,
    mrn             text        NOT NULL,
    given_name      text        NOT NULL,
    family_name     text        NOT NULL,
    birth_date      date        NOT NULL,
    managing_org_id uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT patients_org_mrn_unique UNIQUE (managing_org_id, mrn)
);

CREATE TABLE care_plans (
    id                 uuid PRIMARY KEY,
    patient_id         uuid        NOT NULL REFERENCES patients (id),
    -- protobuf encoding of careloop.plans.v1.CarePlanContent
    content            bytea       NOT NULL,
    reconciled_by      text,
    reconciled_by_role integer,
    reconciled_at      timestamptz,
    reconcile_note     text,
    version            bigint      NOT NULL CHECK (version >= 1),
    updated_at         timestamptz NOT NULL,
    updated_by         text        NOT NULL,
    CONSTRAINT care_plans_patient_unique UNIQUE (patient_id)
);

CREATE TABLE care_team_members (
    id               uuid PRIMARY KEY,
    patient_id       uuid        NOT NULL REFERENCES patients (id),
    kind             integer     NOT NULL,
    display_name     text        NOT NULL,
    role             integer     NOT NULL CHECK (role > 0),
    organization_id  uuid,
    subject          text,
    contact_channel  integer     NOT NULL DEFAULT 0,
    contact_address  text        NOT NULL DEFAULT '',
    is_lead          boolean     NOT NULL,
    added_at         timestamptz NOT NULL,
    removed_at       timestamptz
);
-- The database holds the one-lead rule too: at most one active lead per patient.
CREATE UNIQUE INDEX care_team_one_lead ON care_team_members (patient_id) WHERE is_lead AND removed_at IS NULL;
CREATE INDEX care_team_active ON care_team_members (patient_id) WHERE removed_at IS NULL;
CREATE INDEX care_team_by_org ON care_team_members (organization_id) WHERE removed_at IS NULL;

CREATE TABLE consents (
    id                uuid PRIMARY KEY,
    patient_id        uuid        NOT NULL REFERENCES patients (id),
    grantee_member_id uuid REFERENCES care_team_members (id),
    grantee_org_id    uuid,
    purpose           integer     NOT NULL,
    scope             integer     NOT NULL,
    period_start      timestamptz NOT NULL,
    period_end        timestamptz,
    status            text        NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at        timestamptz,
    revoke_reason     text,
    granted_by        text        NOT NULL,
    granted_at        timestamptz NOT NULL,
    CHECK ((grantee_member_id IS NULL) <> (grantee_org_id IS NULL)),
    CHECK (period_end IS NULL OR period_end > period_start)
);
CREATE INDEX consents_patient ON consents (patient_id);

CREATE TABLE tasks (
    id                 uuid PRIMARY KEY,
    patient_id         uuid        NOT NULL REFERENCES patients (id),
    title              text        NOT NULL,
    description        text        NOT NULL,
    owner_role         integer     NOT NULL CHECK (owner_role > 0),
    backup_role        integer     NOT NULL DEFAULT 0,
    assignee_member_id uuid REFERENCES care_team_members (id),
    due_at             timestamptz NOT NULL,
    priority           integer     NOT NULL,
    linked_kind        integer     NOT NULL DEFAULT 0,
    linked_id          text        NOT NULL DEFAULT '',
    status             text        NOT NULL CHECK (status IN
        ('requested', 'accepted', 'in_progress', 'on_hold', 'completed', 'cancelled', 'failed')),
    held_from          text,
    status_reason      text        NOT NULL DEFAULT '',
    version            bigint      NOT NULL CHECK (version >= 1),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
-- Worklists: open tasks by role or by patient, ordered by due time.
CREATE INDEX tasks_open_by_role ON tasks (owner_role, due_at, id)
    WHERE status IN ('requested', 'accepted', 'in_progress', 'on_hold');
CREATE INDEX tasks_open_by_patient ON tasks (patient_id, due_at, id)
    WHERE status IN ('requested', 'accepted', 'in_progress', 'on_hold');

CREATE TABLE handoffs (
    id              uuid PRIMARY KEY,
    patient_id      uuid        NOT NULL REFERENCES patients (id),
    from_role       integer     NOT NULL CHECK (from_role > 0),
    from_subject    text        NOT NULL,
    to_role         integer     NOT NULL CHECK (to_role > 0),
    situation       text        NOT NULL,
    background      text        NOT NULL,
    assessment      text        NOT NULL,
    recommendation  text        NOT NULL,
    pending_items   text[]      NOT NULL,
    red_flags       text[]      NOT NULL,
    sent_at         timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    version         bigint      NOT NULL
);
CREATE INDEX handoffs_unacknowledged ON handoffs (to_role, sent_at, id) WHERE acknowledged_at IS NULL;

CREATE TABLE transitions (
    id               uuid PRIMARY KEY,
    patient_id       uuid        NOT NULL REFERENCES patients (id),
    from_setting     integer     NOT NULL,
    to_setting       integer     NOT NULL,
    reason           text        NOT NULL,
    success_criteria text        NOT NULL,
    risk_level       integer     NOT NULL,
    checklist        jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('in_progress', 'completed')),
    started_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    version          bigint      NOT NULL
);
CREATE INDEX transitions_patient ON transitions (patient_id, started_at);

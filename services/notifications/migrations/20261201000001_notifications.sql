-- Routing rules, inbox items and the inbox feed of the notifications service.

CREATE TABLE routing_rules (
    id          uuid        PRIMARY KEY,
    -- NULL for a platform default; otherwise the organization whose events it routes.
    org_id      uuid,
    name        text        NOT NULL,
    event_type  text        NOT NULL,
    conditions  jsonb       NOT NULL DEFAULT '{}',
    -- [{"role": <CareRole>} | {"field": "<event field>"}, "window_minutes": n], first rung first.
    ladder      jsonb       NOT NULL,
    priority    text        NOT NULL CHECK (priority IN ('routine', 'urgent', 'critical')),
    channels    text[]      NOT NULL DEFAULT '{inbox}',
    enabled     boolean     NOT NULL DEFAULT true,
    version     bigint      NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_by_type ON routing_rules (event_type) WHERE enabled;

CREATE TABLE items (
    id                uuid        PRIMARY KEY,
    org_id            uuid        NOT NULL,
    patient_id        uuid        NOT NULL,
    rule_id           uuid        NOT NULL REFERENCES routing_rules (id),
    source_event_id   uuid        NOT NULL,
    source_event_type text        NOT NULL,
    -- The first rung's role: with the event and the rule, what makes an item unique.
    first_role        integer     NOT NULL,
    loop_kind         integer     NOT NULL,
    loop_id           uuid        NOT NULL,
    stage             text        NOT NULL,
    title             text        NOT NULL,
    priority          text        NOT NULL CHECK (priority IN ('routine', 'urgent', 'critical')),
    -- The ladder resolved against the event: [{"role": <CareRole>, "window_minutes": n}].
    ladder            jsonb       NOT NULL,
    rung              integer     NOT NULL DEFAULT 0,
    role              integer     NOT NULL,
    escalates_at      timestamptz,
    status            text        NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    note              text        NOT NULL DEFAULT '',
    resolved_by_stage text,
    closed_at         timestamptz,
    created_at        timestamptz NOT NULL,
    version           bigint      NOT NULL DEFAULT 1,
    UNIQUE (source_event_id, rule_id, first_role)
);
CREATE INDEX items_escalation ON items (escalates_at) WHERE status = 'open' AND escalates_at IS NOT NULL;
CREATE INDEX items_by_loop ON items (loop_id) WHERE status = 'open';
CREATE INDEX items_inbox ON items (org_id, role, created_at, id) WHERE status = 'open';
CREATE INDEX items_inbox_all ON items (org_id, role, created_at, id);

-- The inbox feed: one entry each time an item reaches a role's inbox (raised or escalated). Entries
-- take their position from `feed_position` inside the writing transaction, which serializes
-- writers, so positions become visible in order and a watcher reading "after n" never skips one
-- that commits later.
CREATE TABLE feed_position (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL
);
INSERT INTO feed_position VALUES (true, 0);

CREATE TABLE inbox_feed (
    position bigint      PRIMARY KEY,
    org_id   uuid        NOT NULL,
    role     integer     NOT NULL,
    item_id  uuid        NOT NULL REFERENCES items (id),
    kind     text        NOT NULL CHECK (kind IN ('raised', 'escalated')),
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_feed_by_role ON inbox_feed (org_id, role, position);

-- Wakes watchers as soon as a transaction that fed an inbox commits.
CREATE FUNCTION inbox_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('careloop_inbox', current_schema());
    RETURN NULL;
END
$$;
CREATE TRIGGER inbox_feed_notify AFTER INSERT ON inbox_feed
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_feed_notify();

-- Platform defaults (DOMAIN: results by responsibility with a backup; overdue loops to their owner
-- role, then its backup; prior authorizations that stall to the coordinator; handoffs to the
-- receiving role; transitions to the care manager). Critical results climb fastest.
INSERT INTO routing_rules (id, name, event_type, conditions, ladder, priority) VALUES
 ('01930000-0000-7000-8000-000000000101', 'Critical result to the responsible role',
  'referrals.result.routed', '{"flag": "critical"}',
  '[{"field": "to_role", "window_minutes": 15}, {"field": "backup_role", "window_minutes": 15}, {"role": 9, "window_minutes": 30}]',
  'critical'),
 ('01930000-0000-7000-8000-000000000102', 'Abnormal result to the responsible role',
  'referrals.result.routed', '{"flag": "abnormal"}',
  '[{"field": "to_role", "window_minutes": 240}, {"field": "backup_role", "window_minutes": 480}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000103', 'Overdue referral, order or result to its owner role',
  'referrals.loop.overdue', '{}',
  '[{"field": "owner_role", "window_minutes": 240}, {"field": "backup_role", "window_minutes": 240}, {"role": 5, "window_minutes": 480}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000104', 'Overdue task, handoff or follow-up call to its owner role',
  'plans.loop.overdue', '{}',
  '[{"field": "owner_role", "window_minutes": 240}, {"field": "backup_role", "window_minutes": 240}, {"role": 5, "window_minutes": 480}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000105', 'Prior-auth decision overdue to the owner role',
  'priorauth.request.decision_overdue', '{}',
  '[{"field": "owner_role", "window_minutes": 240}, {"role": 11, "window_minutes": 480}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000106', 'Missed patient update on a prior authorization',
  'priorauth.request.update_missed', '{}',
  '[{"field": "owner_role", "window_minutes": 240}, {"role": 11, "window_minutes": 480}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000107', 'Pended prior authorization to the coordinator',
  'priorauth.request.status_changed', '{"to_status": "pended"}',
  '[{"field": "owner_role", "window_minutes": 480}, {"role": 11, "window_minutes": 480}, {"role": 5, "window_minutes": 1440}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000108', 'Denied prior authorization to the coordinator',
  'priorauth.request.status_changed', '{"to_status": "denied"}',
  '[{"field": "owner_role", "window_minutes": 480}, {"role": 11, "window_minutes": 480}, {"role": 5, "window_minutes": 1440}]',
  'urgent'),
 ('01930000-0000-7000-8000-000000000109', 'Handoff to the receiving role',
  'plans.handoff.sent', '{}',
  '[{"field": "to_role", "window_minutes": 1440}]',
  'routine'),
 ('01930000-0000-7000-8000-000000000110', 'Care transition to the care manager',
  'plans.transition.started', '{}',
  '[{"role": 5, "window_minutes": 1440}]',
  'routine');

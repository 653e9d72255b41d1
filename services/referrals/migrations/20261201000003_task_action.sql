-- A pathway rule may create a task on the patient's plan (in plans); each (rule, event) fires once.
ALTER TABLE pathway_rules DROP CONSTRAINT IF EXISTS pathway_rules_action_check;
ALTER TABLE pathway_rules ADD CONSTRAINT pathway_rules_action_check
    CHECK (action IN ('create_order', 'create_referral', 'create_task'));
CREATE TABLE pathway_firings (
    rule_id    uuid        NOT NULL,
    event_id   uuid        NOT NULL,
    created_id uuid        NOT NULL,
    fired_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, event_id)
);

-- The patients' care teams as the events tell them (plan created with its lead, members added,
-- updated, removed), so rules can reach the plan lead and the whole team without asking plans.
CREATE TABLE team_members (
    patient_id uuid    NOT NULL,
    member_id  uuid    NOT NULL,
    role       integer NOT NULL,
    -- The member's organization; NULL for a person of none (the patient's organization then).
    org_id     uuid,
    is_lead    boolean NOT NULL,
    PRIMARY KEY (patient_id, member_id)
);

-- Targets told beside the ladder (one item each, no ladder).
ALTER TABLE routing_rules ADD COLUMN also jsonb NOT NULL DEFAULT '[]';

-- Pended and denied prior authorizations reach the plan lead too; a transition reaches the team.
UPDATE routing_rules SET also = '[{"special": "plan_lead", "window_minutes": 1440}]'
 WHERE id IN ('01930000-0000-7000-8000-000000000107', '01930000-0000-7000-8000-000000000108');
UPDATE routing_rules SET also = '[{"special": "care_team", "window_minutes": 1440}]'
 WHERE id = '01930000-0000-7000-8000-000000000110';

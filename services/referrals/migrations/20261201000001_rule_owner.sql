-- Pathway rules belong to an organization and fire only for the patients it manages. Rules without
-- an organization are the platform's defaults (seeded here, changed only by a CareLoop service).
ALTER TABLE pathway_rules ADD COLUMN org_id uuid;
CREATE INDEX pathway_rules_org ON pathway_rules (org_id);

-- Which organization manages each patient, learned from plans' patient.created events, so a rule
-- can be matched to its organization's patients without calling plans from the consumer.
CREATE TABLE patient_orgs (
    patient_id      uuid PRIMARY KEY,
    managing_org_id uuid NOT NULL
);

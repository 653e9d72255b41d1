-- Rosters and hours: per organization and role, the members with their shifts in the
-- organization's time zone, and the role that takes urgent items while nobody is on duty. Routine
-- items raised off hours are held until the next shift starts.

CREATE TABLE rosters (
    org_id      uuid        NOT NULL,
    role        integer     NOT NULL,
    time_zone   text        NOT NULL,
    -- [{"subject": "...", "shifts": [{"weekdays": [1..7], "start": "07:00:00", "end": "19:00:00"}]}]
    members     jsonb       NOT NULL DEFAULT '[]',
    backup_role integer,
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, role)
);

ALTER TABLE items ADD COLUMN deliver_at timestamptz;
ALTER TABLE items DROP CONSTRAINT items_status_check;
ALTER TABLE items ADD CONSTRAINT items_status_check
    CHECK (status IN ('held', 'open', 'acknowledged', 'resolved'));
CREATE INDEX items_held ON items (deliver_at) WHERE status = 'held';
DROP INDEX items_by_loop;
CREATE INDEX items_by_loop ON items (loop_id) WHERE status IN ('open', 'held');

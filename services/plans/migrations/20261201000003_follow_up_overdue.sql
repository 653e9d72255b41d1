-- The post-discharge follow-up call of a transition, reported once when its due time passes with
-- the call still pending.
ALTER TABLE transitions ADD COLUMN follow_up_reported boolean NOT NULL DEFAULT false;

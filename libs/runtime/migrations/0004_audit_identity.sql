-- Who acted, fully: the issuer that vouched for the subject (an identity provider, the dev key, or
-- "mtls" for a service known by its certificate), and the service that carried a user's call
-- (on-behalf-of), so a row names both the user and the workload.
ALTER TABLE audit_log ADD COLUMN issuer text NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN via_service text;

-- Local database for `make run`: one database, one schema and one role per service; each role may
-- use only its own schema (the same layout k8s/ creates in the cluster). Idempotent.
SELECT 'CREATE DATABASE careloop' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'careloop')
\gexec
\connect careloop
DO $$
DECLARE
    svc text;
BEGIN
    FOREACH svc IN ARRAY ARRAY['plans', 'referrals', 'prior_auth', 'notifications', 'metrics', 'gateway'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'careloop_' || svc) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', 'careloop_' || svc);
        END IF;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', svc, 'careloop_' || svc);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc);
    END LOOP;
END
$$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

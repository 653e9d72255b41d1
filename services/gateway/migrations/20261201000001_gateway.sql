-- The gateway's schema: its audit trail (the common migrations) and the API clients it knows,
-- one row per partner organization with that organization's own rate limit (the configured
-- default applies to every organization without a row).
CREATE TABLE api_clients (
    org_id              uuid        PRIMARY KEY,
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    requests_per_second double precision NOT NULL CHECK (requests_per_second > 0),
    burst               integer     NOT NULL CHECK (burst > 0),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

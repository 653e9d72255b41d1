-- A payer's own published CMS-0057-F figures, entered by the organization, shown beside CareLoop's.
CREATE TABLE payer_published (
    org_id                     uuid             NOT NULL,
    payer_id                   text             NOT NULL,
    period_from                timestamptz      NOT NULL,
    period_to                  timestamptz      NOT NULL,
    standard_approved_percent  double precision NOT NULL,
    standard_denied_percent    double precision NOT NULL,
    expedited_approved_percent double precision NOT NULL,
    expedited_denied_percent   double precision NOT NULL,
    standard_average_hours     double precision,
    expedited_average_hours    double precision,
    entered_by                 text             NOT NULL,
    entered_at                 timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, payer_id, period_from, period_to)
);

-- Providers' delivery reports: a sent notice becomes delivered or undeliverable.
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_status_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_status_check
    CHECK (status IN ('pending', 'sent', 'delivered', 'undeliverable', 'failed', 'cancelled'));
CREATE INDEX outbound_messages_by_receipt ON outbound_messages (channel, receipt) WHERE receipt <> '';

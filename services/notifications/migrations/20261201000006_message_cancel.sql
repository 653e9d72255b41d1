-- A notice still queued when its item is acknowledged or resolved is not sent: it is cancelled.
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_status_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'cancelled'));

-- Notices to family caregivers: a placeholder ('caregivers') is queued when an item reaches the
-- family-caregiver role; the dispatcher asks plans which caregivers may be told now (active
-- consent, preferred contact) and queues one notice each, which names the member and patient so
-- the consent is checked again right before sending and every send is audited.
ALTER TABLE outbound_messages ADD COLUMN caregiver_member_id uuid;
ALTER TABLE outbound_messages ADD COLUMN patient_id uuid;
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_channel_check;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_channel_check
    CHECK (channel IN ('email', 'sms', 'caregivers'));

-- Read and delivered receipts, and the fallback for urgent items nobody read: when an item reached
-- its current inbox, when it was first delivered (pushed to a watcher or sent by a channel), when
-- someone holding its role first opened it, and whether the fallback text went out.
ALTER TABLE items ADD COLUMN reached_at timestamptz;
ALTER TABLE items ADD COLUMN delivered_at timestamptz;
ALTER TABLE items ADD COLUMN read_at timestamptz;
ALTER TABLE items ADD COLUMN read_by text;
ALTER TABLE items ADD COLUMN fallback_sent boolean NOT NULL DEFAULT false;
UPDATE items SET reached_at = created_at WHERE status <> 'held';
CREATE INDEX items_unread_urgent ON items (reached_at)
    WHERE status = 'open' AND read_at IS NULL AND NOT fallback_sent AND priority IN ('urgent', 'critical');

-- A fallback text is a notice of its own kind: it never collides with the item's first notice.
ALTER TABLE outbound_messages ADD COLUMN kind text NOT NULL DEFAULT 'notice'
    CHECK (kind IN ('notice', 'fallback'));
ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_item_id_item_version_channel_address_key;
ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_once
    UNIQUE (item_id, item_version, channel, address, kind);

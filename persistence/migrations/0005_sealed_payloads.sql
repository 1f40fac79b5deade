-- 0005_sealed_payloads seals message content at rest and bounds the
-- quarantine.
--
-- Deliveries and outbox replies keep their content in the same column
-- (deliveries.payload, reply_outbox.envelope), now AES-256-GCM ciphertext
-- under the master key named by payload_key_id / envelope_key_id, bound to
-- its row. A row with no key id was written in clear by an earlier version:
-- the store reads both forms, and each node's retention sweep seals the
-- clear rows it finds. purged_at is set when the retention sweep erased the
-- content of a final row; the row and its status stay.
ALTER TABLE deliveries
    ADD COLUMN payload_key_id text CHECK (payload_key_id IS NULL OR length(payload_key_id) BETWEEN 1 AND 64),
    ADD COLUMN payload_nonce  bytea CHECK (payload_nonce IS NULL OR length(payload_nonce) = 12),
    ADD COLUMN purged_at      timestamptz,
    ADD CONSTRAINT deliveries_payload_sealed_check CHECK ((payload_key_id IS NULL) = (payload_nonce IS NULL));
-- Rows still in clear, for the sweep that seals them; empty once it ran.
CREATE INDEX deliveries_clear_idx ON deliveries (id) WHERE payload_key_id IS NULL AND purged_at IS NULL;
-- Final rows whose content the retention sweep will erase.
CREATE INDEX deliveries_purge_idx ON deliveries (updated_at) WHERE purged_at IS NULL AND status IN ('succeeded', 'dead');

ALTER TABLE reply_outbox
    ADD COLUMN envelope_key_id text CHECK (envelope_key_id IS NULL OR length(envelope_key_id) BETWEEN 1 AND 64),
    ADD COLUMN envelope_nonce  bytea CHECK (envelope_nonce IS NULL OR length(envelope_nonce) = 12),
    ADD COLUMN purged_at       timestamptz,
    ADD CONSTRAINT reply_outbox_envelope_sealed_check CHECK ((envelope_key_id IS NULL) = (envelope_nonce IS NULL));
CREATE INDEX reply_outbox_clear_idx ON reply_outbox (id) WHERE envelope_key_id IS NULL AND purged_at IS NULL;
CREATE INDEX reply_outbox_purge_idx ON reply_outbox (updated_at) WHERE purged_at IS NULL AND status IN ('sent', 'dead');

-- A quarantined message keeps the SHA-256 and the size of the input and
-- only its first 256 bytes (envelope), so hostile input cannot grow the
-- table by more than a few kilobytes a row. Rows already there are cut the
-- same way, and each bridge keeps its newest 1000.
ALTER TABLE quarantined_messages
    ADD COLUMN envelope_hash bytea CHECK (envelope_hash IS NULL OR length(envelope_hash) = 32),
    ADD COLUMN envelope_size integer NOT NULL DEFAULT 0 CHECK (envelope_size >= 0);
UPDATE quarantined_messages
    SET envelope_hash = sha256(envelope), envelope_size = length(envelope), envelope = substring(envelope FROM 1 FOR 256)
    WHERE length(envelope) > 0;
UPDATE quarantined_messages SET topic = left(topic, 512) WHERE length(topic) > 512;
DELETE FROM quarantined_messages q
    USING (SELECT id, row_number() OVER (PARTITION BY bridge_id ORDER BY id DESC) AS n FROM quarantined_messages) r
    WHERE q.id = r.id AND r.n > 1000;
ALTER TABLE quarantined_messages
    ADD CONSTRAINT quarantined_messages_prefix_check CHECK (length(envelope) <= 256),
    ADD CONSTRAINT quarantined_messages_topic_check CHECK (length(topic) <= 512);
-- The retention sweep deletes by age.
CREATE INDEX quarantined_messages_created_idx ON quarantined_messages (created_at);

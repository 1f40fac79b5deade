-- 0007_first_hour: what a newcomer's first hour needs.
--
-- sealing_keys records, for each master key id that sealed something in
-- this database, a fingerprint of the key (HMAC-SHA256 of a fixed label
-- under the key, never the key): a node started with another key under
-- the same id is told so, with the fix, instead of failing later on the
-- first value it cannot decrypt.
CREATE TABLE sealing_keys (
    key_id      text        PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 64),
    fingerprint bytea       NOT NULL CHECK (length(fingerprint) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- forward_configs.retry is the bridge's retry mode: 'standard' (Standard
-- Webhooks: every non-2xx answer but 410 is retried) or 'final4xx' (a 4xx
-- other than 429 ends the delivery at once).
ALTER TABLE forward_configs
    ADD COLUMN retry text NOT NULL DEFAULT 'standard' CHECK (retry IN ('standard', 'final4xx'));

-- deliveries.reply is the text the endpoint answered, sealed like the
-- payload and bound to its row, for the owner's delivery view; NULL when
-- there was no reply. The retention sweep erases it with the payload.
ALTER TABLE deliveries
    ADD COLUMN reply        bytea,
    ADD COLUMN reply_key_id text CHECK (reply_key_id IS NULL OR length(reply_key_id) BETWEEN 1 AND 64),
    ADD COLUMN reply_nonce  bytea CHECK (reply_nonce IS NULL OR length(reply_nonce) = 12),
    ADD CONSTRAINT deliveries_reply_sealed_check CHECK ((reply IS NULL) = (reply_key_id IS NULL) AND (reply_key_id IS NULL) = (reply_nonce IS NULL));

-- A deleted bridge leaves a tombstone for BRIDGE_TOMBSTONE_FOR: its key
-- bundle and conversations stay sealed exactly as they were (same key id,
-- nonce and ciphertext, bound to the bridge id), so that the node can answer
-- senders once per conversation that the address no longer takes
-- messages. At expires_at every node's sweep deletes the rows, which erases
-- the keys.
CREATE TABLE bridge_tombstones (
    bridge_id      uuid        PRIMARY KEY,
    address        text        NOT NULL UNIQUE CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),
    key_id         text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_nonce      bytea       NOT NULL CHECK (length(key_nonce) = 12),
    key_ciphertext bytea       NOT NULL CHECK (length(key_ciphertext) > 16),
    deleted_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX bridge_tombstones_expires_idx ON bridge_tombstones (expires_at);

CREATE TABLE tombstone_conversations (
    bridge_id      uuid        NOT NULL REFERENCES bridge_tombstones (bridge_id) ON DELETE CASCADE,
    topic          text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    peer_address   text        NOT NULL CHECK (peer_address ~ '^0x[0-9a-fA-F]{40}$'),
    created_ns     bigint      NOT NULL CHECK (created_ns >= 0),
    key_id         text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_nonce      bytea       NOT NULL CHECK (length(key_nonce) = 12),
    key_ciphertext bytea       NOT NULL CHECK (length(key_ciphertext) > 16),
    PRIMARY KEY (bridge_id, topic)
);

-- tombstone_replies holds the conversations a tombstone has answered, so
-- each gets the line once whichever node sees the message. At most 1000
-- rows per tombstone (the store refuses more), so senders opening new
-- conversations cannot grow it without bound.
CREATE TABLE tombstone_replies (
    bridge_id  uuid        NOT NULL REFERENCES bridge_tombstones (bridge_id) ON DELETE CASCADE,
    topic      text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    replied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge_id, topic)
);

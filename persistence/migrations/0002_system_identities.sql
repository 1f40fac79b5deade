-- System identities are the XMTP identities the system itself holds: the API
-- server's identity (its messages to a bridge are reverse commands) and the
-- canary identity (the prober sends from it). Each role has one identity,
-- generated once by the first node that starts and shared by every node.
-- The private key bundle is sealed like a bridge key; the role and address
-- are the additional data.
CREATE TABLE system_identities (
    role            text        PRIMARY KEY CHECK (role IN ('api', 'canary')),
    address         text        NOT NULL UNIQUE CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),
    key_id          text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_nonce       bytea       NOT NULL CHECK (length(key_nonce) = 12),
    key_ciphertext  bytea       NOT NULL CHECK (length(key_ciphertext) > 16),
    created_at      timestamptz NOT NULL DEFAULT now()
);

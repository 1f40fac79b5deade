-- 0001_initial creates the whole schema of the bridge runtime: tenants and
-- their API keys, bridge identities with their sealed keys and handler
-- configuration, conversation state, durable deliveries, the reply outbox,
-- canary results and the fencing leases of the cluster.

-- Accounts are the tenants. A system account (for example the one that owns
-- bridges created through the relaycc-compatible endpoints) has a unique
-- system name.
CREATE TABLE accounts (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    system_name text        UNIQUE CHECK (system_name IS NULL OR length(system_name) BETWEEN 1 AND 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as the SHA-256 of the key. The prefix is a short,
-- non-secret part of the key shown to its owner so they can tell keys apart.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    account_id   uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key_hash     bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix       text        NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    name         text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id, id);

-- Bridges are the XMTP identities the system holds for an account. The
-- private key bundle is sealed with AES-256-GCM under a master key named by
-- key_id; the bridge id and address are the additional data, so a sealed
-- bundle cannot be moved to another row.
CREATE TABLE bridges (
    id              uuid        PRIMARY KEY,
    account_id      uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    address         text        NOT NULL CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),
    name            text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    key_id          text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_nonce       bytea       NOT NULL CHECK (length(key_nonce) = 12),
    key_ciphertext  bytea       NOT NULL CHECK (length(key_ciphertext) > 16),
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'endpoint_gone')),
    hook_token_hash bytea       UNIQUE CHECK (hook_token_hash IS NULL OR length(hook_token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX bridges_address_idx ON bridges (lower(address));
CREATE INDEX bridges_account_idx ON bridges (account_id, id);
CREATE INDEX bridges_key_id_idx ON bridges (key_id);

-- forward_configs holds the forward handler of each bridge: where inbound
-- XMTP messages go and how. The extra headers often carry credentials for
-- the owner's endpoint, so they are sealed like keys (a JSON object, with
-- the bridge id as additional data).
CREATE TABLE forward_configs (
    bridge_id       uuid        PRIMARY KEY REFERENCES bridges (id) ON DELETE CASCADE,
    url             text        NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    body_format     text        NOT NULL CHECK (body_format IN ('relaycc', 'json')),
    reply_mode      text        NOT NULL CHECK (reply_mode IN ('none', 'reply')),
    timeout_ms      integer     NOT NULL CHECK (timeout_ms BETWEEN 100 AND 120000),
    max_concurrency integer     NOT NULL CHECK (max_concurrency BETWEEN 1 AND 1000),
    headers_key_id     text     NOT NULL CHECK (length(headers_key_id) BETWEEN 1 AND 64),
    headers_nonce      bytea    NOT NULL CHECK (length(headers_nonce) = 12),
    headers_ciphertext bytea    NOT NULL CHECK (length(headers_ciphertext) >= 16),
    allow_senders   text[]      NOT NULL DEFAULT '{}',
    deny_senders    text[]      NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forward_configs_key_id_idx ON forward_configs (headers_key_id);

-- webhook_secrets holds the Standard Webhooks signing secrets of a bridge,
-- sealed like the keys. The current secret has no expiry; a rotated-out
-- secret stays valid until expires_at.
CREATE TABLE webhook_secrets (
    id         uuid        PRIMARY KEY,
    bridge_id  uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    key_id     text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    nonce      bytea       NOT NULL CHECK (length(nonce) = 12),
    ciphertext bytea       NOT NULL CHECK (length(ciphertext) > 16),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE UNIQUE INDEX webhook_secrets_current_idx ON webhook_secrets (bridge_id) WHERE expires_at IS NULL;
CREATE INDEX webhook_secrets_bridge_idx ON webhook_secrets (bridge_id, created_at DESC);
CREATE INDEX webhook_secrets_key_id_idx ON webhook_secrets (key_id);

-- conversations holds the V2 conversations a bridge takes part in, with
-- their sealed key material.
CREATE TABLE conversations (
    bridge_id       uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    topic           text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    peer_address    text        NOT NULL CHECK (peer_address ~ '^0x[0-9a-fA-F]{40}$'),
    conversation_id text        NOT NULL DEFAULT '',
    metadata        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_ns      bigint      NOT NULL CHECK (created_ns >= 0),
    key_id          text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_nonce       bytea       NOT NULL CHECK (length(key_nonce) = 12),
    key_ciphertext  bytea       NOT NULL CHECK (length(key_ciphertext) > 16),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge_id, topic)
);
CREATE INDEX conversations_peer_idx ON conversations (bridge_id, peer_address);
CREATE INDEX conversations_key_id_idx ON conversations (key_id);

-- cursors records, per bridge and topic, the newest envelope whose delivery
-- is durably recorded; replay starts after it.
CREATE TABLE cursors (
    bridge_id         uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    topic             text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    last_timestamp_ns bigint      NOT NULL CHECK (last_timestamp_ns >= 0),
    last_digest       bytea       CHECK (last_digest IS NULL OR length(last_digest) = 32),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge_id, topic)
);

-- deliveries is the durable queue from XMTP to the owner's HTTP endpoint.
-- message_id (the envelope hash) is the idempotency key per bridge. Dead
-- letters are deliveries with status 'dead'.
CREATE TABLE deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bridge_id       uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    message_id      text        NOT NULL CHECK (length(message_id) BETWEEN 1 AND 256),
    topic           text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    sender_address  text        NOT NULL CHECK (sender_address ~ '^0x[0-9a-fA-F]{40}$'),
    sent_ns         bigint      NOT NULL DEFAULT 0 CHECK (sent_ns >= 0),
    payload         bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bridge_id, message_id)
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_bridge_idx ON deliveries (bridge_id, id DESC);
CREATE INDEX deliveries_dead_idx ON deliveries (bridge_id, id DESC) WHERE status = 'dead';

-- delivery_attempts records every HTTP attempt of a delivery.
CREATE TABLE delivery_attempts (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    status_code integer     CHECK (status_code IS NULL OR status_code BETWEEN 100 AND 599),
    latency_ms  double precision NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    error       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, id);

-- quarantined_messages keeps input that could not be handled (malformed
-- envelopes, poison messages) with the reason, for an operator to inspect.
CREATE TABLE quarantined_messages (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bridge_id  uuid        REFERENCES bridges (id) ON DELETE CASCADE,
    topic      text        NOT NULL DEFAULT '',
    envelope   bytea       NOT NULL,
    reason     text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantined_messages_bridge_idx ON quarantined_messages (bridge_id, id DESC);

-- reply_outbox holds XMTP envelopes to publish. The envelope bytes carry
-- their fixed timestamp, so a retry publishes exactly the same message.
CREATE TABLE reply_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bridge_id       uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    delivery_id     bigint      REFERENCES deliveries (id) ON DELETE SET NULL,
    topic           text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    timestamp_ns    bigint      NOT NULL CHECK (timestamp_ns >= 0),
    envelope        bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_outbox_due_idx ON reply_outbox (bridge_id, next_attempt_at) WHERE status IN ('pending', 'failed');

-- canary_results records each canary round trip.
CREATE TABLE canary_results (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bridge_id   uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    nonce       text        NOT NULL CHECK (length(nonce) BETWEEN 1 AND 128),
    sent_at     timestamptz NOT NULL,
    received_at timestamptz,
    rtt_ms      double precision CHECK (rtt_ms IS NULL OR rtt_ms >= 0),
    error       text        NOT NULL DEFAULT '',
    UNIQUE (bridge_id, nonce)
);
CREATE INDEX canary_results_sent_idx ON canary_results (bridge_id, sent_at DESC);

-- identity_leases fences activations: only the owner with the current
-- epoch may write or send for an identity until the lease expires.
CREATE TABLE identity_leases (
    identity   text        PRIMARY KEY CHECK (length(identity) BETWEEN 1 AND 256),
    owner      text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 256),
    epoch      bigint      NOT NULL CHECK (epoch > 0),
    expires_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_leases_owner_idx ON identity_leases (owner);

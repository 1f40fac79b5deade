-- 0008_live adds what the bridge sends on its owner's behalf and pushes to
-- its owner's live consumers: the status of every sent message, the
-- delivery mode of a bridge and the offline store of its live stream.

-- sent_messages records every message a bridge sends for its owner: REST
-- sends, reverse-proxy sends of the API identity, live `send` and `reply`
-- frames and broadcasts, keyed by the XMTP message id. A send published at
-- once carries its own status; one that goes through the outbox names its
-- reply_outbox row, whose status it reads. No content is kept here.
CREATE TABLE sent_messages (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bridge_id    uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    message_id   text        NOT NULL CHECK (length(message_id) BETWEEN 1 AND 256),
    source       text        NOT NULL CHECK (source IN ('rest', 'reverse', 'live', 'broadcast')),
    to_address   text        NOT NULL CHECK (to_address ~ '^0x[0-9a-fA-F]{40}$'),
    status       text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   text        NOT NULL DEFAULT '' CHECK (length(last_error) <= 2000),
    reply_id     bigint      REFERENCES reply_outbox (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bridge_id, message_id)
);
CREATE INDEX sent_messages_bridge_idx ON sent_messages (bridge_id, id DESC);
CREATE INDEX sent_messages_reply_idx ON sent_messages (reply_id) WHERE reply_id IS NOT NULL;
-- The retention sweep deletes old rows.
CREATE INDEX sent_messages_updated_idx ON sent_messages (updated_at);

-- A bridge's delivery mode: its inbound messages go to its webhook, to its
-- live consumers (the live stream below), or to both.
ALTER TABLE bridges
    ADD COLUMN delivery text NOT NULL DEFAULT 'webhook' CHECK (delivery IN ('webhook', 'live', 'both'));

-- live_messages is the live stream of a bridge and its offline store: every
-- inbound message of a bridge in live or both mode, kept until one of its
-- consumers acknowledges it or BRIDGE_LIVE_RETENTION passes (then it is
-- dead, and so is its delivery: a dead letter). id is the delivery's id
-- and the stream's cursor, so the stream keeps the order of arrival
-- whatever order the deliveries are handed over in.
-- A consumer claims the messages it was sent until claimed_until, which
-- its node renews while the socket is up; a message whose claim lapsed goes
-- to the next consumer. body is the `message` notification's params, the
-- JSON webhook body, sealed like delivery payloads and bound to the bridge
-- and message id. A reply of a consumer is recorded once, with its outbox
-- row.
CREATE TABLE live_messages (
    id               bigint      PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    bridge_id        uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    message_id       text        NOT NULL CHECK (length(message_id) BETWEEN 1 AND 256),
    topic            text        NOT NULL CHECK (length(topic) BETWEEN 1 AND 512),
    sender_address   text        NOT NULL CHECK (sender_address ~ '^0x[0-9a-fA-F]{40}$'),
    body             bytea       NOT NULL,
    body_key_id      text        CHECK (body_key_id IS NULL OR length(body_key_id) BETWEEN 1 AND 64),
    body_nonce       bytea       CHECK (body_nonce IS NULL OR length(body_nonce) = 12),
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'acked', 'dead')),
    claimed_by       text        CHECK (claimed_by IS NULL OR length(claimed_by) BETWEEN 1 AND 128),
    claimed_until    timestamptz,
    sends            integer     NOT NULL DEFAULT 0 CHECK (sends >= 0),
    reply_id         bigint      REFERENCES reply_outbox (id) ON DELETE SET NULL,
    reply_message_id text        CHECK (reply_message_id IS NULL OR length(reply_message_id) BETWEEN 1 AND 256),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    purged_at        timestamptz,
    UNIQUE (bridge_id, message_id),
    CONSTRAINT live_messages_body_sealed_check CHECK ((body_key_id IS NULL) = (body_nonce IS NULL))
);
CREATE INDEX live_messages_pending_idx ON live_messages (bridge_id, id) WHERE status = 'pending';
CREATE INDEX live_messages_claims_idx ON live_messages (claimed_by) WHERE status = 'pending' AND claimed_by IS NOT NULL;
CREATE INDEX live_messages_expiry_idx ON live_messages (created_at) WHERE status = 'pending';
CREATE INDEX live_messages_clear_idx ON live_messages (id) WHERE body_key_id IS NULL AND purged_at IS NULL;
CREATE INDEX live_messages_purge_idx ON live_messages (updated_at) WHERE purged_at IS NULL AND status IN ('acked', 'dead');

-- Subscriptions: an XMTP user sends the bridge its subscribe word (or its
-- unsubscribe word) and the bridge keeps it in subscribers; the feature
-- can be turned off per bridge. broadcasts_pending is the hint, read with
-- the bridge, that its grain has broadcast copies to queue: an idle bridge
-- costs no query for broadcasts.
ALTER TABLE bridges
    ADD COLUMN subscriptions      boolean NOT NULL DEFAULT true,
    ADD COLUMN subscribe_word     text    NOT NULL DEFAULT '/subscribe' CHECK (length(subscribe_word) BETWEEN 1 AND 64),
    ADD COLUMN unsubscribe_word   text    NOT NULL DEFAULT '/unsubscribe' CHECK (length(unsubscribe_word) BETWEEN 1 AND 64),
    ADD COLUMN broadcasts_pending boolean NOT NULL DEFAULT false;

CREATE TABLE subscribers (
    bridge_id  uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    address    text        NOT NULL CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge_id, address)
);

-- broadcasts are the owner's pushes to every subscriber of a bridge. The
-- content is sealed like delivery payloads, bound to the broadcast. Each
-- subscriber at the time of the broadcast gets one broadcast_recipients row;
-- the grain turns each, once, into an outbox reply (status queued, with
-- its reply_id) in one transaction, at most BRIDGE_BROADCAST_RATE a second
-- (next_batch_at), or marks it failed with the reason. When no recipient
-- is pending any more, the content is erased (purged_at).
CREATE TABLE broadcasts (
    id             uuid        PRIMARY KEY,
    bridge_id      uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    content        bytea       NOT NULL,
    content_key_id text        CHECK (content_key_id IS NULL OR length(content_key_id) BETWEEN 1 AND 64),
    content_nonce  bytea       CHECK (content_nonce IS NULL OR length(content_nonce) = 12),
    recipients     integer     NOT NULL CHECK (recipients >= 0),
    next_batch_at  timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    purged_at      timestamptz,
    CONSTRAINT broadcasts_content_sealed_check CHECK ((content_key_id IS NULL) = (content_nonce IS NULL))
);
CREATE INDEX broadcasts_bridge_idx ON broadcasts (bridge_id, created_at);

CREATE TABLE broadcast_recipients (
    broadcast_id uuid        NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    address      text        NOT NULL CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'queued', 'failed')),
    reply_id     bigint      REFERENCES reply_outbox (id) ON DELETE SET NULL,
    message_id   text        CHECK (message_id IS NULL OR length(message_id) BETWEEN 1 AND 256),
    last_error   text        NOT NULL DEFAULT '' CHECK (length(last_error) <= 2000),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broadcast_id, address)
);
CREATE INDEX broadcast_recipients_pending_idx ON broadcast_recipients (broadcast_id) WHERE status = 'pending';

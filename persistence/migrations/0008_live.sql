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

-- Envelopes published to the local XMTP node, one row per distinct
-- (topic, timestamp, digest). The unique index is also the query index:
-- queries filter by topic and walk (timestamp_ns, digest) in either
-- direction, which is the order the paging cursor follows.
CREATE TABLE IF NOT EXISTS xmtp_envelopes (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    timestamp_ns bigint      NOT NULL,
    digest       bytea       NOT NULL,
    message      bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS xmtp_envelopes_topic_time_digest
    ON xmtp_envelopes (topic, timestamp_ns, digest);

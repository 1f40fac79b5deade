-- 0015_row_checks_in_functions: the rows a forwarded message writes are
-- checked by one CHECK constraint per table, which calls a function, in
-- place of many CHECK constraints.
--
-- Postgres prepares a table's CHECK constraints again for every statement
-- that writes to it: it reads each constraint's stored expression tree back
-- from its text form, simplifies it and compiles it, before the first row.
-- deliveries had 12 of them (10 kB of expression text), reply_outbox 7,
-- delivery_attempts 2 and cursors 3: a completion (an UPDATE of deliveries
-- and an INSERT into reply_outbox and delivery_attempts) spent more CPU on
-- that than on its writes.
-- A function's body is compiled once per connection, and the one
-- constraint that calls it is a short expression to prepare.
--
-- The functions check exactly what the constraints they replace checked,
-- each condition failing only when it is false (a CHECK passes on NULL),
-- and they are IMMUTABLE: they read nothing but their arguments. A row
-- refused now names the table's one constraint (deliveries_row_check,
-- reply_outbox_row_check, delivery_attempts_row_check, cursors_row_check).

ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_attempts_check,
    DROP CONSTRAINT deliveries_message_id_check,
    DROP CONSTRAINT deliveries_payload_key_id_check,
    DROP CONSTRAINT deliveries_payload_nonce_check,
    DROP CONSTRAINT deliveries_payload_sealed_check,
    DROP CONSTRAINT deliveries_reply_key_id_check,
    DROP CONSTRAINT deliveries_reply_nonce_check,
    DROP CONSTRAINT deliveries_reply_sealed_check,
    DROP CONSTRAINT deliveries_sender_address_check,
    DROP CONSTRAINT deliveries_sent_ns_check,
    DROP CONSTRAINT deliveries_status_check,
    DROP CONSTRAINT deliveries_topic_check;

CREATE FUNCTION deliveries_row_valid(message_id text, topic text, sender_address text, sent_ns bigint, status text,
    attempts integer, payload_key_id text, payload_nonce bytea, reply bytea, reply_key_id text, reply_nonce bytea)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (length(message_id) BETWEEN 1 AND 256) IS NOT FALSE
        AND (length(topic) BETWEEN 1 AND 512) IS NOT FALSE
        -- sender_address ~ '^0x[0-9a-fA-F]{40}$', without running a regular
        -- expression for each row written
        AND (length(sender_address) = 42 AND left(sender_address, 2) = '0x'
            AND translate(substr(sender_address, 3), '0123456789abcdefABCDEF', '') = '') IS NOT FALSE
        AND (sent_ns >= 0) IS NOT FALSE
        AND (status IN ('pending', 'succeeded', 'failed', 'dead')) IS NOT FALSE
        AND (attempts >= 0) IS NOT FALSE
        AND (payload_key_id IS NULL OR length(payload_key_id) BETWEEN 1 AND 64)
        AND (payload_nonce IS NULL OR length(payload_nonce) = 12)
        AND (payload_key_id IS NULL) = (payload_nonce IS NULL)
        AND (reply_key_id IS NULL OR length(reply_key_id) BETWEEN 1 AND 64)
        AND (reply_nonce IS NULL OR length(reply_nonce) = 12)
        AND (reply IS NULL) = (reply_key_id IS NULL)
        AND (reply_key_id IS NULL) = (reply_nonce IS NULL);
END $$;

ALTER TABLE deliveries ADD CONSTRAINT deliveries_row_check CHECK (deliveries_row_valid(message_id, topic, sender_address,
    sent_ns, status, attempts, payload_key_id, payload_nonce, reply, reply_key_id, reply_nonce));

ALTER TABLE reply_outbox
    DROP CONSTRAINT reply_outbox_attempts_check,
    DROP CONSTRAINT reply_outbox_envelope_key_id_check,
    DROP CONSTRAINT reply_outbox_envelope_nonce_check,
    DROP CONSTRAINT reply_outbox_envelope_sealed_check,
    DROP CONSTRAINT reply_outbox_status_check,
    DROP CONSTRAINT reply_outbox_timestamp_ns_check,
    DROP CONSTRAINT reply_outbox_topic_check;

CREATE FUNCTION reply_outbox_row_valid(topic text, timestamp_ns bigint, status text, attempts integer,
    envelope_key_id text, envelope_nonce bytea)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (length(topic) BETWEEN 1 AND 512) IS NOT FALSE
        AND (timestamp_ns >= 0) IS NOT FALSE
        AND (status IN ('pending', 'sent', 'failed', 'dead')) IS NOT FALSE
        AND (attempts >= 0) IS NOT FALSE
        AND (envelope_key_id IS NULL OR length(envelope_key_id) BETWEEN 1 AND 64)
        AND (envelope_nonce IS NULL OR length(envelope_nonce) = 12)
        AND (envelope_key_id IS NULL) = (envelope_nonce IS NULL);
END $$;

ALTER TABLE reply_outbox ADD CONSTRAINT reply_outbox_row_check CHECK (reply_outbox_row_valid(topic, timestamp_ns, status,
    attempts, envelope_key_id, envelope_nonce));

ALTER TABLE delivery_attempts
    DROP CONSTRAINT delivery_attempts_latency_ms_check,
    DROP CONSTRAINT delivery_attempts_status_code_check;

CREATE FUNCTION delivery_attempts_row_valid(status_code integer, latency_ms double precision)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (status_code IS NULL OR status_code BETWEEN 100 AND 599)
        AND (latency_ms >= 0) IS NOT FALSE;
END $$;

ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_row_check CHECK (delivery_attempts_row_valid(status_code, latency_ms));

ALTER TABLE cursors
    DROP CONSTRAINT cursors_last_digest_check,
    DROP CONSTRAINT cursors_last_timestamp_ns_check,
    DROP CONSTRAINT cursors_topic_check;

CREATE FUNCTION cursors_row_valid(topic text, last_timestamp_ns bigint, last_digest bytea)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (length(topic) BETWEEN 1 AND 512) IS NOT FALSE
        AND (last_timestamp_ns >= 0) IS NOT FALSE
        AND (last_digest IS NULL OR length(last_digest) = 32);
END $$;

ALTER TABLE cursors ADD CONSTRAINT cursors_row_check CHECK (cursors_row_valid(topic, last_timestamp_ns, last_digest));

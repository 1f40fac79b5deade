-- 0016_counts_and_reply_order: two reads whose cost grew with the data.
--
-- DueReplies ranked every due reply of the bridge for each page, so
-- draining a backlog of N replies read N rows per page. It now walks each
-- conversation's unsent replies in order, one step per conversation per
-- round, and stops once the page is full: this index gives the
-- conversations of a bridge's unsent replies (one probe each) and, within
-- one, its replies to messages in message order (delivery_id, id), then
-- the others by id (a NULL delivery_id sorts last), with when each is due,
-- so that a step need not read the row.
CREATE INDEX reply_outbox_order_idx ON reply_outbox (bridge_id, topic, delivery_id, id) INCLUDE (next_attempt_at)
    WHERE status IN ('pending', 'failed');
-- It serves the other reads of unsent replies too, so that a new reply
-- still adds one entry to the indexes of unsent replies, not two:
-- UnsentReplyTopics (a bridge's conversations) and DueWork (the bridges
-- with a due reply, which reads the entry of every unsent reply in either
-- index) read it instead of reply_outbox_due_idx (bridge_id,
-- next_attempt_at), which no read needs any more.
DROP INDEX reply_outbox_due_idx;

-- The metrics scrape (bridge_endpoint_state, on every node) counted every
-- bridge with count(*) FROM bridges to know how many endpoints are
-- healthy: a full scan of bridges on each scrape. bridge_counts keeps the
-- number of bridges instead, as the sum of a fixed number of slots, kept
-- by statement triggers on bridges in the transaction that inserts or
-- deletes them: the scrape reads 64 rows, however many bridges there are.
-- A statement adds its rows' number to the slot of its backend
-- (pg_backend_pid() % 64), so two transactions creating bridges at once
-- wait on each other only when their backends share a slot, and a
-- transaction only ever locks the one slot of its backend. TRUNCATE of
-- bridges sets every slot to zero.
CREATE TABLE bridge_counts (
    slot smallint PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
    n    bigint   NOT NULL DEFAULT 0
);

CREATE FUNCTION bridge_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO d FROM added;
    ELSE
        SELECT -count(*) INTO d FROM removed;
    END IF;
    IF d <> 0 THEN
        UPDATE bridge_counts SET n = n + d WHERE slot = pg_backend_pid() % 64;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION bridge_counts_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bridge_counts SET n = 0 WHERE n <> 0;
    RETURN NULL;
END $$;

-- No bridge is inserted or deleted between the count below and the
-- triggers: the lock holds every writer of bridges until this commits,
-- which is why this part comes last.
LOCK TABLE bridges IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO bridge_counts (slot) SELECT s FROM generate_series(0, 63) AS s;
UPDATE bridge_counts SET n = (SELECT count(*) FROM bridges) WHERE slot = 0;
CREATE TRIGGER bridges_count_insert AFTER INSERT ON bridges
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION bridge_counts_add();
CREATE TRIGGER bridges_count_delete AFTER DELETE ON bridges
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION bridge_counts_add();
CREATE TRIGGER bridges_count_truncate AFTER TRUNCATE ON bridges
    FOR EACH STATEMENT EXECUTE FUNCTION bridge_counts_clear();

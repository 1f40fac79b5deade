-- 0014_hot_rows_without_foreign_keys: a forwarded message's rows no
-- longer check foreign keys, which locked shared rows on every insert.
--
-- Each insert into deliveries and reply_outbox checked its bridge with
-- SELECT ... FOR KEY SHARE on the one bridges row of the bridge, and each
-- insert into delivery_attempts and reply_outbox checked its delivery the
-- same way: a lock record in the WAL per check, and, since the writes of
-- one bridge run at once on several connections, a new multixact
-- whenever two of them shared the bridge's row. What those keys
-- protected is that no such row names a bridge or delivery that does not
-- exist, and that deleting a bridge deletes its rows (a bridge is deleted
-- for good; its tombstone keeps only its key and conversations). That
-- stays true without them:
--
--   - A delivery is inserted only where bridge_accepts_writes says its
--     bridge exists. The function takes a shared transaction-level
--     advisory lock on the bridge (no row lock, no WAL) and then reads
--     the bridge with a snapshot of its own, taken after the lock.
--   - Deleting a bridge (bridges_delete_rows, after the row is deleted)
--     takes that advisory lock exclusively: it waits for the inserts
--     under way, and any later one waits for the delete to commit and
--     then finds the bridge gone. Each of its statements reads with a
--     snapshot taken after the lock, so it sees every delivery committed
--     before it.
--   - An attempt, and a completion's reply, are inserted only by the
--     statement that locks their delivery's row (FOR NO KEY UPDATE, or
--     the update itself), and for a delivery that row lock finds. The
--     delete locks every delivery of the bridge FOR UPDATE first, so it
--     waits for those statements, sees what they wrote and deletes it;
--     one that comes after finds the delivery gone and writes nothing.
--   - A reply that is not a completion's (a send, a live reply, a
--     broadcast; off the forward path) locks its bridge's row, and its
--     delivery's when it names one, FOR KEY SHARE, as the foreign keys
--     did: the delete of the bridge's row waits for it, and its trigger
--     then sees the reply.
--
-- A node older than this migration writes those rows without these
-- checks: a bridge deleted while such a node still runs may leave rows of
-- it behind. Upgrade every node before deleting bridges again.
--
-- Deliveries are deleted only with their bridge; the rows of a bridge go
-- in one pass instead of one cascade per delivery, and reply_outbox's
-- delivery_id no longer needs the sequential scan of reply_outbox that
-- its ON DELETE SET NULL made for each deleted delivery.

CREATE FUNCTION bridge_accepts_writes(bridge uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- 1651664999 names this use of the two-key advisory locks.
    PERFORM pg_advisory_xact_lock_shared(1651664999, hashtext(bridge::text));
    -- A VOLATILE function's statement reads with a new snapshot, taken
    -- after the lock: a delete of the bridge that held the lock has
    -- committed and is seen.
    RETURN EXISTS (SELECT 1 FROM bridges WHERE id = bridge);
END $$;

CREATE FUNCTION bridges_delete_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1651664999, hashtext(OLD.id::text));
    -- In id order, the order a batch of completions locks them in, so
    -- the two wait for each other instead of deadlocking.
    PERFORM 1 FROM deliveries WHERE bridge_id = OLD.id ORDER BY id FOR UPDATE;
    DELETE FROM delivery_attempts a USING deliveries d WHERE d.bridge_id = OLD.id AND a.delivery_id = d.id;
    DELETE FROM reply_outbox WHERE bridge_id = OLD.id;
    DELETE FROM deliveries WHERE bridge_id = OLD.id;
    RETURN NULL;
END $$;

CREATE TRIGGER bridges_delete_rows AFTER DELETE ON bridges
    FOR EACH ROW EXECUTE FUNCTION bridges_delete_rows();

ALTER TABLE deliveries DROP CONSTRAINT deliveries_bridge_id_fkey;
ALTER TABLE reply_outbox DROP CONSTRAINT reply_outbox_bridge_id_fkey;
ALTER TABLE reply_outbox DROP CONSTRAINT reply_outbox_delivery_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;

-- 0013_forward_write_cost: fewer index entries and smaller WAL records
-- for each forwarded message, which writes a delivery, an attempt and an
-- outbox reply, and updates the delivery and the reply once each.
--
-- deliveries_due_idx (next_attempt_at, for deliveries waiting) is read by
-- no query: every look-up of waiting deliveries names the bridge, and
-- goes through deliveries_bridge_due_idx or deliveries_waiting_idx
-- (TestForwardPathPlans). Each new delivery added an entry to it.
DROP INDEX deliveries_due_idx;

-- A delivery's attempts are read by delivery (AttemptsOf, the cascade of
-- a deleted delivery) and never by id alone, so the primary key is
-- (delivery_id, id) and serves both: one index entry per attempt instead
-- of two.
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey;
DROP INDEX delivery_attempts_delivery_idx;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_pkey PRIMARY KEY (delivery_id, id);

-- A delivery and a reply are each updated once or twice soon after their
-- insert (completed; published). The update changes indexed columns, so it
-- is never HOT, but when the new version fits on the row's own page its
-- WAL record leaves out the part of the row that did not change (the
-- payload or envelope) and needs no separate lock record, and one page is
-- written instead of two. Inserts leave 30% of each new page for that; a
-- row's older version is reclaimed when its page is next read. The table
-- grows no faster for it: with full pages, each updated version went to a
-- new page instead. (On rows shaped like deliveries, updated once each,
-- the table's WAL was 28% smaller at fillfactor 70 than at 100, and its
-- size the same.)
ALTER TABLE deliveries SET (fillfactor = 70);
ALTER TABLE reply_outbox SET (fillfactor = 70);

-- 0009_due_work: the node's due-work scheduler and configuration events.
--
-- One query per node and interval finds the bridges with work due
-- (persistence.DueWork): a skip scan over the bridges with waiting
-- deliveries, each checked for a due one through this index, so the cost
-- follows the bridges with work, not the bridges hosted nor the length of
-- a backlog.
CREATE INDEX deliveries_bridge_due_idx ON deliveries (bridge_id, next_attempt_at) WHERE status IN ('pending', 'failed');
-- The bridges with broadcast copies to queue.
CREATE INDEX bridges_broadcasts_pending_idx ON bridges (id) WHERE broadcasts_pending;

-- Every change of a bridge's configuration (its row, its forward
-- configuration, its webhook secrets) is announced on the channel
-- bridge_changed with the bridge's id: the hosting grain keeps its copy
-- of the configuration until then instead of polling.
CREATE FUNCTION notify_bridge_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'bridges' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('bridge_changed', OLD.id::text);
        ELSE
            PERFORM pg_notify('bridge_changed', NEW.id::text);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('bridge_changed', OLD.bridge_id::text);
    ELSE
        PERFORM pg_notify('bridge_changed', NEW.bridge_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bridges_notify AFTER UPDATE OR DELETE ON bridges
    FOR EACH ROW EXECUTE FUNCTION notify_bridge_changed();
CREATE TRIGGER forward_configs_notify AFTER INSERT OR UPDATE OR DELETE ON forward_configs
    FOR EACH ROW EXECUTE FUNCTION notify_bridge_changed();
CREATE TRIGGER webhook_secrets_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_secrets
    FOR EACH ROW EXECUTE FUNCTION notify_bridge_changed();

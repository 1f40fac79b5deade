-- 0011_node_leases: one lease per node process instead of one renewed
-- lease per hosted identity.
--
-- A node process takes a node lease when it starts (a new row, so a node
-- restarted after a kill -9 has a new incarnation) and renews that one row
-- every third of its lifetime. The identity leases it takes point at it
-- and are not rewritten while it lives: an identity lease with a node
-- lease is valid while its owner and epoch match, it is not released, and
-- its node lease is unexpired. A node lease that ran out is never renewed
-- again, so every identity lease pointing at it is void for good and may be
-- taken over.
--
-- lost counts the identity leases other owners took over from this node
-- lease while they were unreleased; the node's renewer reads it back and
-- checks its identities only when it moved.
CREATE TABLE node_leases (
    id         bigserial   PRIMARY KEY,
    node       text        NOT NULL CHECK (length(node) BETWEEN 1 AND 256),
    member     text        NOT NULL CHECK (length(member) BETWEEN 1 AND 256),
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    lost       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX node_leases_node_idx ON node_leases (node);

-- An identity lease without a node lease (the leases taken before this
-- migration, and leases held outside a node such as the canary prober's)
-- keeps its own expires_at, renewed by its holder. With a node lease,
-- expires_at stays 'infinity' until the lease is released.
--
-- released marks a lease given up. A renewal never touches a released
-- lease, so a release cannot be undone by a renewal in flight.
ALTER TABLE identity_leases
    ADD COLUMN node_lease bigint REFERENCES node_leases (id),
    ADD COLUMN released boolean NOT NULL DEFAULT false;
UPDATE identity_leases SET released = true WHERE expires_at <= updated_at;
CREATE INDEX identity_leases_node_lease_idx ON identity_leases (node_lease) WHERE node_lease IS NOT NULL;


-- A node of the previous version, during a rolling upgrade, knows neither
-- column. When it takes over a released lease (whose expiry has passed),
-- it changes owner, epoch and expiry and leaves released set; the lease
-- then becomes one on its own again, valid by its expiry as that node
-- expects, instead of a released lease another node could take as well.
CREATE FUNCTION identity_leases_previous_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.released AND NEW.released
        AND (NEW.owner <> OLD.owner OR NEW.epoch <> OLD.epoch OR NEW.expires_at > OLD.expires_at) THEN
        NEW.released := false;
        NEW.node_lease := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER identity_leases_previous_version BEFORE UPDATE ON identity_leases
    FOR EACH ROW EXECUTE FUNCTION identity_leases_previous_version();

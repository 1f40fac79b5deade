-- 0012_contact_publications: what each bridge's identity last published as
-- its contact bundle, so an activation publishes only a bundle the network
-- has not been given yet instead of querying its contact topic every time.
--
-- digest is the SHA-256 of the public key bundle published (it changes
-- when a pre-key is added). A table of its own: a write here is no change
-- of the bridge's configuration, so it announces nothing on
-- bridge_changed.
CREATE TABLE contact_publications (
    bridge_id    uuid        PRIMARY KEY REFERENCES bridges (id) ON DELETE CASCADE,
    digest       bytea       NOT NULL CHECK (length(digest) = 32),
    published_at timestamptz NOT NULL DEFAULT now()
);

-- Wasm plug-ins (Extism) and their bindings to a bridge's extension points.

-- A bridge may have no endpoint (url ''): a bot whose on_message plug-in
-- answers its messages.
ALTER TABLE forward_configs DROP CONSTRAINT forward_configs_url_check;
ALTER TABLE forward_configs ADD CONSTRAINT forward_configs_url_check
    CHECK (url = '' OR (url ~ '^https?://' AND length(url) <= 2048));

-- plugins holds each account's uploaded modules. An upload under a name
-- the account already uses is a new version of that plug-in: the bytes,
-- the SHA-256 (the ETag nodes re-validate by) and the version change in
-- place, and every node running it picks the new version up.
CREATE TABLE plugins (
    id         uuid        PRIMARY KEY,
    account_id uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    version    integer     NOT NULL DEFAULT 1 CHECK (version > 0),
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size       integer     NOT NULL CHECK (size > 0),
    exports    text[]      NOT NULL,
    wasm       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

-- plugin_bindings puts a plug-in on one extension point of a bridge. A
-- bound plug-in cannot be deleted (RESTRICT); a deleted bridge takes its
-- bindings with it.
CREATE TABLE plugin_bindings (
    bridge_id  uuid        NOT NULL REFERENCES bridges (id) ON DELETE CASCADE,
    point      text        NOT NULL CHECK (point IN ('on_message', 'on_response', 'on_send')),
    plugin_id  uuid        NOT NULL REFERENCES plugins (id) ON DELETE RESTRICT,
    config     jsonb       NOT NULL DEFAULT '{}',
    on_error   text        NOT NULL CHECK (on_error IN ('forward', 'drop', 'dead_letter')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge_id, point)
);

CREATE INDEX plugin_bindings_plugin_id ON plugin_bindings (plugin_id);

-- Every change of a binding, and every new version of a bound plug-in, is
-- announced on the channel bridge_plugins with the bridge's id, so nodes
-- reload that bridge's bindings at once instead of polling.
CREATE FUNCTION notify_plugin_binding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('bridge_plugins', OLD.bridge_id::text);
    ELSE
        PERFORM pg_notify('bridge_plugins', NEW.bridge_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER plugin_bindings_notify AFTER INSERT OR UPDATE OR DELETE ON plugin_bindings
    FOR EACH ROW EXECUTE FUNCTION notify_plugin_binding();

CREATE FUNCTION notify_plugin_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bridge_plugins', b.bridge_id::text)
        FROM plugin_bindings b WHERE b.plugin_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER plugins_notify AFTER UPDATE OF sha256 ON plugins
    FOR EACH ROW EXECUTE FUNCTION notify_plugin_version();

-- Signup rate limiting, shared by every node of a cluster: one row per
-- client and fixed window, counting the signups the client made in it.
-- The client is the SHA-256 of its address, so no address is stored. Rows
-- of old windows are deleted as new signups come.
CREATE TABLE signup_windows (
    client       bytea       NOT NULL CHECK (length(client) = 32),
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL CHECK (count > 0),
    PRIMARY KEY (client, window_start)
);

CREATE INDEX signup_windows_window_start ON signup_windows (window_start);

-- Quotas and limits shared by every node of a cluster.

-- auth_failure_windows counts failed relaycc token attempts (on /hook and
-- /instance) per client and fixed window, like signup_windows: the client
-- is the SHA-256 of its address, and rows of old windows are deleted as
-- new failures come.
CREATE TABLE auth_failure_windows (
    client       bytea       NOT NULL CHECK (length(client) = 32),
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL CHECK (count > 0),
    PRIMARY KEY (client, window_start)
);

CREATE INDEX auth_failure_windows_window_start ON auth_failure_windows (window_start);

-- send_buckets is the token bucket of each sender of REST messages: an
-- account, or a bridge of a system account (relaycc bridges share one
-- account but each has its own bucket). tokens is what was left at
-- updated_at; it refills at the configured rate up to the burst. A row
-- whose bucket has refilled is the same as no row, so rows of deleted
-- subjects are harmless and are deleted with them where the store can.
CREATE TABLE send_buckets (
    subject    uuid             PRIMARY KEY,
    tokens     double precision NOT NULL CHECK (tokens >= 0),
    updated_at timestamptz      NOT NULL
);

-- 0010_endpoint_health: one health state per bridge endpoint, shared by
-- every node, so the owner and a newly rehomed owner agree.
--
-- state moves on the outcomes of real attempts: 'healthy', 'failing' (a
-- failure streak below the threshold), 'open' (no attempts, only one probe
-- at next_probe_at, claimed by whichever node finds it due) or 'disabled'
-- (open for longer than BRIDGE_BREAKER_DISABLE_AFTER, as with a 410). A
-- bridge without a row is healthy.
CREATE TABLE endpoint_health (
    bridge_id         uuid        PRIMARY KEY REFERENCES bridges (id) ON DELETE CASCADE,
    state             text        NOT NULL DEFAULT 'healthy' CHECK (state IN ('healthy', 'failing', 'open', 'disabled')),
    failure_streak    integer     NOT NULL DEFAULT 0 CHECK (failure_streak >= 0),
    last_success_at   timestamptz,
    last_failure_at   timestamptz,
    opened_at         timestamptz,
    next_probe_at     timestamptz,
    probe_interval_ms bigint      NOT NULL DEFAULT 0 CHECK (probe_interval_ms >= 0),
    changed_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'open') = (next_probe_at IS NOT NULL)),
    CHECK (state NOT IN ('open', 'disabled') OR opened_at IS NOT NULL)
);
-- The metrics count the endpoints by state; most rows are healthy.
CREATE INDEX endpoint_health_state_idx ON endpoint_health (state) WHERE state <> 'healthy';
-- The deliveries waiting on a bridge (the backlog the metrics count, and
-- what the recovery flush makes due), without scanning its history.
CREATE INDEX deliveries_waiting_idx ON deliveries (bridge_id, id) WHERE status IN ('pending', 'failed');

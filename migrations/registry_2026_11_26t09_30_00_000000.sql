-- The event log: append-only, dense, hash-chained. The database refuses edits to history.

-- The application role: INSERT and SELECT only on history. Created once per cluster.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        CREATE ROLE registry_app LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database on this cluster created it at the same moment
END
$$;

CREATE TABLE event (
    position        bigint      PRIMARY KEY CHECK (position >= 0),
    stream_id       text        NOT NULL CHECK (stream_id <> ''),
    stream_version  integer     NOT NULL CHECK (stream_version >= 0),
    event_type      text        NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    schema_version  smallint    NOT NULL CHECK (schema_version >= 1),
    actor           text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    effective_date  date,
    canonical       bytea       NOT NULL,
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    CONSTRAINT event_stream_version_unique UNIQUE (stream_id, stream_version)
);
CREATE INDEX event_type_position ON event (event_type, position);
CREATE INDEX event_recorded_at ON event (recorded_at);
CREATE INDEX event_actor_position ON event (actor, position);

COMMENT ON TABLE event IS 'The truth: every business fact, append-only; canonical holds the exact hashed bytes.';

-- Each new event must extend the log by exactly one: position n needs n-1, its prev_hash is
-- n-1's hash, its hash is SHA-256 of its canonical bytes, and its stream grows by one.
CREATE FUNCTION event_guard_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.hash <> sha256(NEW.canonical) THEN
        RAISE EXCEPTION 'event %: hash is not SHA-256 of its canonical bytes', NEW.position
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.position = 0 THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT hash INTO previous FROM event WHERE position = NEW.position - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event %: position % is missing (positions are dense)', NEW.position, NEW.position - 1
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NEW.prev_hash <> previous THEN
        RAISE EXCEPTION 'event %: prev_hash does not match the previous event', NEW.position
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.stream_version > 0 AND NOT EXISTS (
        SELECT 1 FROM event WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version - 1
    ) THEN
        RAISE EXCEPTION 'event %: stream % has no version %', NEW.position, NEW.stream_id, NEW.stream_version - 1
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: history is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER event_guard_insert BEFORE INSERT ON event
    FOR EACH ROW EXECUTE FUNCTION event_guard_insert();
CREATE TRIGGER event_refuse_change BEFORE UPDATE OR DELETE ON event
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER event_refuse_truncate BEFORE TRUNCATE ON event
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- Durable idempotency: a client's key and the fingerprint of the request it first carried,
-- with the response it got. Also append-only.
CREATE TABLE idempotency_key (
    scope           text        NOT NULL,
    key             text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    command         text        NOT NULL,
    request_hash    bytea       NOT NULL CHECK (length(request_hash) = 32),
    response        bytea       NOT NULL,
    first_position  bigint,
    last_position   bigint,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TRIGGER idempotency_key_refuse_change BEFORE UPDATE OR DELETE ON idempotency_key
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER idempotency_key_refuse_truncate BEFORE TRUNCATE ON idempotency_key
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

REVOKE ALL ON event, idempotency_key FROM PUBLIC;
GRANT SELECT, INSERT ON event, idempotency_key TO registry_app;
GRANT SELECT ON migration TO registry_app;
GRANT USAGE ON SCHEMA public TO registry_app;

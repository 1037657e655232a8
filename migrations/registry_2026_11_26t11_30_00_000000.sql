-- The writer's first statement in each batch: take the writer lock, then read the head, in one round trip.
-- (As two expressions of one SELECT the head could be read before the lock is held.)
CREATE FUNCTION writer_begin(lock_key bigint, OUT head_position bigint, OUT head_hash bytea)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT position, hash INTO head_position, head_hash FROM event ORDER BY position DESC LIMIT 1;
END
$$;
GRANT EXECUTE ON FUNCTION writer_begin(bigint) TO registry_app;

-- A transfer's consumed lots are retired one primary-key lookup each: the cached generic plan of
-- `lot_id = ANY(ARRAY(...))` scanned every lot, so transfers slowed as the lots grew.
CREATE OR REPLACE FUNCTION project_warrant_transferred(d jsonb, p_position bigint, p_day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_code text := d->>'code';
    v_units bigint := (d->>'units')::bigint;
    v_before_total bigint := (d->'from_before'->>'available')::bigint + (d->'from_before'->>'pledged')::bigint
                             + (d->'from_before'->>'frozen')::bigint;
    v_receivers text[] := ARRAY(SELECT jsonb_array_elements_text(d->'receiver_holders'));
    v_lot jsonb;
BEGIN
    UPDATE holding SET available = (d->'from_after'->>'available')::bigint,
                       pledged = (d->'from_after'->>'pledged')::bigint,
                       frozen = (d->'from_after'->>'frozen')::bigint,
                       cost_fen = cost_fen - CASE WHEN v_before_total > 0 THEN cost_fen * v_units / v_before_total ELSE 0 END,
                       last_position = p_position
        WHERE series_code = v_code AND account_id = d->>'from_account';
    INSERT INTO holding (series_code, account_id, investor_id, available, pledged, frozen, cost_fen, holders,
                         last_position)
        VALUES (v_code, d->>'to_account', d->>'to_investor', (d->'to_after'->>'available')::bigint,
                (d->'to_after'->>'pledged')::bigint, (d->'to_after'->>'frozen')::bigint,
                (d->>'consideration_fen')::bigint, v_receivers, p_position)
        ON CONFLICT (series_code, account_id) DO UPDATE SET available = excluded.available,
            pledged = excluded.pledged, frozen = excluded.frozen, cost_fen = holding.cost_fen + excluded.cost_fen,
            holders = excluded.holders, last_position = excluded.last_position;
    INSERT INTO series_holder_ever (series_code, holder_id) SELECT v_code, unnest(v_receivers)
        ON CONFLICT DO NOTHING;
    FOR v_lot IN SELECT jsonb_array_elements(d->'consumed_lots') LOOP
        UPDATE warrant_lot SET active = false WHERE lot_id = v_lot->>'lot_id';
    END LOOP;
    INSERT INTO warrant_lot (lot_id, series_code, account_id, units, parent, origin, active, created_position)
        SELECT l->>'lot_id', v_code, l->>'account_id', (l->>'units')::bigint, l->>'parent', l->>'origin', true,
               p_position
        FROM jsonb_array_elements(d->'produced_lots') AS l;
    IF d->>'from_investor' <> d->>'to_investor' THEN
        INSERT INTO trade_interval (series_code, investor_id, last_sell) VALUES (v_code, d->>'from_investor', p_day)
            ON CONFLICT (series_code, investor_id) DO UPDATE SET last_sell = excluded.last_sell;
        INSERT INTO trade_interval (series_code, investor_id, last_buy) VALUES (v_code, d->>'to_investor', p_day)
            ON CONFLICT (series_code, investor_id) DO UPDATE SET last_buy = excluded.last_buy;
    END IF;
END
$$;

-- Many warrant.transferred events in one call, applied one by one in the order given (log order),
-- each exactly as project_warrant_transferred() applies it alone.
CREATE FUNCTION project_warrant_transfers(p_data jsonb[], p_positions bigint[], p_days date[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_data, 1), 0) LOOP
        PERFORM project_warrant_transferred(p_data[i], p_positions[i], p_days[i]);
    END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION project_warrant_transfers(jsonb[], bigint[], date[]) TO registry_app;

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

-- A batch of warrant.transferred events, folded by its Python projector into their net effect (the
-- final row of each holding touched, the lots produced with whether they are still active, the lots
-- retired, the last buy and sell dates, the holders new to each series): a handful of set-based
-- statements instead of seven per transfer. The result equals applying project_warrant_transferred()
-- to each event in log order, which a rebuild checks.
CREATE FUNCTION project_warrant_transfer_batch(
    h_code text[], h_account text[], h_investor text[], h_available bigint[], h_pledged bigint[],
    h_frozen bigint[], h_cost bigint[], h_holders jsonb, h_position bigint[],
    l_id text[], l_code text[], l_account text[], l_units bigint[], l_parent text[], l_origin text[],
    l_active boolean[], l_position bigint[],
    retired text[],
    i_code text[], i_investor text[], i_buy date[], i_sell date[],
    e_code text[], e_holder text[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lot_id text;
BEGIN
    -- each row's holders are one JSON array in h_holders (a JSON array of them, in row order)
    INSERT INTO holding (series_code, account_id, investor_id, available, pledged, frozen, cost_fen, holders,
                         last_position)
        SELECT u.code, u.account, u.investor, u.available, u.pledged, u.frozen, u.cost,
               ARRAY(SELECT jsonb_array_elements_text(h_holders->(u.ord::int - 1))), u.pos
        FROM unnest(h_code, h_account, h_investor, h_available, h_pledged, h_frozen, h_cost, h_position)
             WITH ORDINALITY AS u(code, account, investor, available, pledged, frozen, cost, pos, ord)
        ON CONFLICT (series_code, account_id) DO UPDATE SET available = excluded.available,
            pledged = excluded.pledged, frozen = excluded.frozen, cost_fen = excluded.cost_fen,
            holders = excluded.holders, last_position = excluded.last_position;
    -- one primary-key update per lot: a cached generic plan of `lot_id = ANY(retired)` scans every lot
    FOREACH v_lot_id IN ARRAY retired LOOP
        UPDATE warrant_lot SET active = false WHERE lot_id = v_lot_id;
    END LOOP;
    INSERT INTO warrant_lot (lot_id, series_code, account_id, units, parent, origin, active, created_position)
        SELECT * FROM unnest(l_id, l_code, l_account, l_units, l_parent, l_origin, l_active, l_position);
    INSERT INTO trade_interval (series_code, investor_id, last_buy, last_sell)
        SELECT * FROM unnest(i_code, i_investor, i_buy, i_sell)
        ON CONFLICT (series_code, investor_id) DO UPDATE
            SET last_buy = coalesce(excluded.last_buy, trade_interval.last_buy),
                last_sell = coalesce(excluded.last_sell, trade_interval.last_sell);
    INSERT INTO series_holder_ever (series_code, holder_id) SELECT * FROM unnest(e_code, e_holder)
        ON CONFLICT DO NOTHING;
END
$$;

GRANT EXECUTE ON FUNCTION project_warrant_transfer_batch(text[], text[], text[], bigint[], bigint[], bigint[],
    bigint[], jsonb, bigint[], text[], text[], text[], bigint[], text[], text[], boolean[], bigint[], text[],
    text[], text[], date[], date[], text[], text[]) TO registry_app;

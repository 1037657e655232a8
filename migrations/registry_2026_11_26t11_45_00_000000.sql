-- Warrant transfers on the hot path: what a transfer decision needs, and its projection, one round trip each.

-- Everything the transfer rules read, as one JSON document.
CREATE FUNCTION warrant_transfer_facts(p_code text, p_from text, p_to text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH accts AS (
        SELECT a.account_id, a.investor_id, a.kind, a.status,
               coalesce(array_agg(b.investor_id) FILTER (WHERE b.investor_id IS NOT NULL), '{}') AS owners
        FROM account a LEFT JOIN account_beneficial_owner b USING (account_id)
        WHERE a.account_id IN (p_from, p_to) GROUP BY a.account_id
    ), people AS (
        SELECT investor_id FROM accts UNION SELECT unnest(owners) FROM accts
    )
    SELECT jsonb_build_object(
        -- the columns, not the stored terms with their initial allocation (up to 200 lines)
        'series', (SELECT to_jsonb(s) - 'terms' FROM warrant_series s WHERE s.code = p_code),
        'accounts', coalesce((SELECT jsonb_agg(to_jsonb(accts)) FROM accts), '[]'),
        'qualifications', coalesce((SELECT jsonb_agg(jsonb_build_object(
                'investor_id', q.investor_id, 'category', q.category, 'evidence_digest', q.evidence_digest,
                'valid_from', q.valid_from, 'valid_until', q.valid_until, 'revoked_on', q.revoked_on))
            FROM qualification q WHERE q.investor_id IN (SELECT investor_id FROM people)), '[]'),
        'balances', coalesce((SELECT jsonb_object_agg(h.account_id, jsonb_build_object(
                'available', h.available, 'pledged', h.pledged, 'frozen', h.frozen))
            FROM holding h WHERE h.series_code = p_code AND h.account_id IN (p_from, p_to)), '{}'),
        'intervals', coalesce((SELECT jsonb_object_agg(t.investor_id, jsonb_build_object(
                'last_buy', t.last_buy, 'last_sell', t.last_sell))
            FROM trade_interval t WHERE t.series_code = p_code
              AND t.investor_id IN (SELECT investor_id FROM accts)), '{}'),
        'holders_now', coalesce((SELECT jsonb_agg(DISTINCT x.h) FROM holding, unnest(holders) AS x(h)
            WHERE series_code = p_code AND available + pledged + frozen > 0), '[]'),
        'holders_ever', coalesce((SELECT jsonb_agg(holder_id) FROM series_holder_ever
            WHERE series_code = p_code), '[]'),
        'sender_lots', coalesce((SELECT jsonb_agg(jsonb_build_object('lot_id', l.lot_id, 'account_id', l.account_id,
                'units', l.units, 'parent', l.parent, 'origin', l.origin) ORDER BY l.created_position, l.lot_id)
            FROM warrant_lot l WHERE l.series_code = p_code AND l.account_id = p_from AND l.active), '[]'),
        'calendar_position', (SELECT last_position FROM calendar_span),
        'database', current_database()
    )
$$;

-- The projection of one warrant.transferred event.
CREATE FUNCTION project_warrant_transferred(d jsonb, p_position bigint, p_day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_code text := d->>'code';
    v_units bigint := (d->>'units')::bigint;
    v_before_total bigint := (d->'from_before'->>'available')::bigint + (d->'from_before'->>'pledged')::bigint
                             + (d->'from_before'->>'frozen')::bigint;
    v_moved_cost bigint;
    v_receivers text[] := ARRAY(SELECT jsonb_array_elements_text(d->'receiver_holders'));
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
    UPDATE warrant_lot SET active = false  -- = ANY(ARRAY(...)): a primary-key lookup, not a scan of every lot
        WHERE lot_id = ANY(ARRAY(SELECT l->>'lot_id' FROM jsonb_array_elements(d->'consumed_lots') AS l));
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

GRANT EXECUTE ON FUNCTION warrant_transfer_facts(text, text, text) TO registry_app;
GRANT EXECUTE ON FUNCTION project_warrant_transferred(jsonb, bigint, date) TO registry_app;

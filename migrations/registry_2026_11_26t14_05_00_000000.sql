-- A transfer is projected by project_warrant_transfer_batch() whether it comes alone (a rebuild) or
-- with its batch (the writer), so the transfer rules for the query tables live in one place. The
-- per-event function and the facts query that transfers used before the writer remembered their
-- facts have no callers left.
DROP FUNCTION project_warrant_transferred(jsonb, bigint, date);
DROP FUNCTION warrant_transfer_facts(text, text, text);

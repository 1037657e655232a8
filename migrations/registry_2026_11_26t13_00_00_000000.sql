-- The RFC 6962 / RFC 9162 Merkle tree over the event log, and the signed checkpoints of its heads.

-- Every complete power-of-two subtree of the tree: (level, node_index) covers the leaves
-- [node_index * 2^level, (node_index + 1) * 2^level). Level 0 holds the leaf hashes
-- SHA-256(0x00 || event.canonical), node_index = event.position. Written once, when the tree is
-- extended over new events; any tree head or proof is folded from O(log n) of these rows.
CREATE TABLE merkle_node (
    level       smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    node_index  bigint   NOT NULL CHECK (node_index >= 0),
    hash        bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);
COMMENT ON TABLE merkle_node IS 'Complete subtrees of the Merkle tree over event.canonical; append-only.';

-- Signed tree heads: the C2SP tlog-checkpoint note exactly as served, one per tree size.
CREATE TABLE checkpoint (
    tree_size   bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root_hash   bytea       NOT NULL CHECK (length(root_hash) = 32),
    origin      text        NOT NULL CHECK (origin <> ''),
    key_name    text        NOT NULL CHECK (key_name <> ''),
    key_id      bytea       NOT NULL CHECK (length(key_id) = 4),
    note        text        NOT NULL,
    signed_at   timestamptz NOT NULL,
    signed_by   text        NOT NULL
);
COMMENT ON TABLE checkpoint IS 'Signed tree heads (C2SP signed notes); append-only.';

CREATE TRIGGER merkle_node_refuse_change BEFORE UPDATE OR DELETE ON merkle_node
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER merkle_node_refuse_truncate BEFORE TRUNCATE ON merkle_node
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER checkpoint_refuse_change BEFORE UPDATE OR DELETE ON checkpoint
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER checkpoint_refuse_truncate BEFORE TRUNCATE ON checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

REVOKE ALL ON merkle_node, checkpoint FROM PUBLIC;
GRANT SELECT, INSERT ON merkle_node, checkpoint TO registry_app;

-- The listing pipeline: projections of listing.* events — filed facts, each enterprise's stage and its
-- moves, security codes (never reused), and rulebook versions published by operators.

-- Every filing, corrections included: a correction is a new row, never an edit of the old one.
CREATE TABLE listing_fact (
    position                bigint  PRIMARY KEY,
    uscc                    text    NOT NULL REFERENCES enterprise,
    name                    text    NOT NULL,
    value                   jsonb   NOT NULL,
    fiscal_period           text    NOT NULL CHECK (fiscal_period <> ''),
    source_document_digest  text    NOT NULL CHECK (source_document_digest ~ '^[0-9a-f]{64}$'),
    corrects                bigint  REFERENCES listing_fact,
    filed_on                date    NOT NULL,
    filed_by                text    NOT NULL,
    CHECK (corrects IS NULL OR corrects < position)
);
CREATE INDEX listing_fact_uscc ON listing_fact (uscc, position);

-- Where each enterprise stands now. An enterprise without a row is in no stage yet.
CREATE TABLE listing_stage (
    uscc            text    PRIMARY KEY REFERENCES enterprise,
    stage           text    NOT NULL,
    since           date    NOT NULL,
    suspended_from  text,
    security_code   text,
    board           text,
    last_position   bigint  NOT NULL,
    CHECK ((stage = 'suspended') = (suspended_from IS NOT NULL)),
    CHECK ((security_code IS NULL) = (board IS NULL))
);
CREATE INDEX listing_stage_stage ON listing_stage (stage);

-- Every move, dated: the stage of any enterprise on any date is the last move made by then.
CREATE TABLE listing_move (
    position         bigint  PRIMARY KEY,
    uscc             text    NOT NULL REFERENCES enterprise,
    from_stage       text,
    to_stage         text    NOT NULL,
    moved_on         date    NOT NULL,
    approval_id      text    NOT NULL,
    requested_by     text    NOT NULL,
    approved_by      text    NOT NULL,
    reason           text    NOT NULL,
    override_reason  text,
    passed           boolean NOT NULL,
    rulebooks        text[]  NOT NULL,
    -- a move that failed its criteria is recorded only with the override's reason; four eyes, always
    CHECK (passed OR override_reason IS NOT NULL),
    CHECK (requested_by <> approved_by)
);
CREATE INDEX listing_move_uscc ON listing_move (uscc, position);
CREATE INDEX listing_move_moved_on ON listing_move (moved_on);

-- Every security code ever issued. The primary key is why a retired code is never issued again.
CREATE TABLE security_code (
    code           text    PRIMARY KEY CHECK (code ~ '^[0-9]+$'),
    uscc           text    NOT NULL REFERENCES enterprise,
    board          text    NOT NULL,
    issued_on      date    NOT NULL,
    retired_on     date,
    last_position  bigint  NOT NULL,
    CHECK (retired_on IS NULL OR retired_on >= issued_on)
);
CREATE UNIQUE INDEX security_code_one_live_per_enterprise ON security_code (uscc) WHERE retired_on IS NULL;

-- Rulebook versions published by operators through four-eyes (the shipped ones live in the package).
CREATE TABLE rulebook_version (
    id              text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    effective_from  date        NOT NULL,
    title           text        NOT NULL,
    text            text        NOT NULL,
    reason          text        NOT NULL,
    approval_id     text        NOT NULL,
    published_by    text        NOT NULL,
    published_at    timestamptz NOT NULL,
    last_position   bigint      NOT NULL,
    PRIMARY KEY (id, version)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON listing_fact, listing_stage, listing_move, security_code, rulebook_version
    TO registry_app;

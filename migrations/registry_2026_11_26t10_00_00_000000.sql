-- Parties and accounts: projections of enterprise.*, investor.*, account.*, qualification.* events.

CREATE TABLE enterprise (
    uscc                    text        PRIMARY KEY CHECK (uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    name                    text        NOT NULL CHECK (name <> ''),
    legal_form              text        NOT NULL CHECK (legal_form IN ('llc', 'joint_stock')),
    registered_capital_fen  bigint      NOT NULL CHECK (registered_capital_fen > 0),
    industry                text        NOT NULL,
    specialised_level       text        NOT NULL,
    status                  text        NOT NULL,
    registered_at           timestamptz NOT NULL,
    last_position           bigint      NOT NULL
);
CREATE INDEX enterprise_name ON enterprise (name);

CREATE TABLE investor (
    investor_id               text        PRIMARY KEY,
    kind                      text        NOT NULL CHECK (kind IN ('natural_person', 'institution')),
    name                      text        NOT NULL CHECK (name <> ''),
    identity_document_digest  text        NOT NULL CHECK (identity_document_digest ~ '^[0-9a-f]{64}$'),
    registered_at             timestamptz NOT NULL,
    last_position             bigint      NOT NULL
);

CREATE TABLE account (
    account_id           text        PRIMARY KEY,
    investor_id          text        NOT NULL REFERENCES investor,
    kind                 text        NOT NULL CHECK (kind IN ('ordinary', 'nominee')),
    status               text        NOT NULL CHECK (status IN ('open', 'frozen', 'closed')),
    freeze_basis         text,
    freeze_document_ref  text,
    opened_at            timestamptz NOT NULL,
    last_position        bigint      NOT NULL,
    CHECK ((status = 'frozen') = (freeze_basis IS NOT NULL))
);
CREATE INDEX account_investor ON account (investor_id);

CREATE TABLE account_beneficial_owner (
    account_id   text NOT NULL REFERENCES account,
    investor_id  text NOT NULL REFERENCES investor,
    PRIMARY KEY (account_id, investor_id)
);

CREATE TABLE qualification (
    investor_id      text    NOT NULL REFERENCES investor,
    sequence         integer NOT NULL CHECK (sequence >= 1),
    category         text    NOT NULL,
    evidence_digest  text    NOT NULL CHECK (evidence_digest ~ '^[0-9a-f]{64}$'),
    valid_from       date    NOT NULL,
    valid_until      date,
    revoked_on       date,
    last_position    bigint  NOT NULL,
    PRIMARY KEY (investor_id, sequence),
    CHECK (valid_until IS NULL OR valid_until >= valid_from)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON enterprise, investor, account, account_beneficial_owner, qualification
    TO registry_app;

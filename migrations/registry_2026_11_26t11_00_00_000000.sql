-- The warrant registry: projections of warrant.* and shares.* events. Invariants are CHECKs too.

CREATE TABLE warrant_series (
    code                     text        PRIMARY KEY,
    target_uscc              text        NOT NULL REFERENCES enterprise,
    name                     text        NOT NULL,
    issuer_kind              text        NOT NULL CHECK (issuer_kind IN ('target', 'shareholder')),
    issuing_shareholder_id   text,
    underlying               text        NOT NULL CHECK (underlying IN ('shares', 'registered_capital')),
    entitlement_per_unit     numeric     NOT NULL CHECK (entitlement_per_unit > 0),
    exercise_price_per_unit  numeric     NOT NULL CHECK (exercise_price_per_unit > 0),
    valid_from               date        NOT NULL,
    valid_until              date        NOT NULL,
    original_valid_until     date        NOT NULL,
    exercise_method          text        NOT NULL,
    transfer_modes           text[]      NOT NULL,
    max_holders              integer     NOT NULL CHECK (max_holders BETWEEN 1 AND 200),
    holder_cap_basis         text        NOT NULL CHECK (holder_cap_basis IN ('current', 'cumulative')),
    anti_dilution            text        NOT NULL,
    terms                    jsonb       NOT NULL,
    status                   text        NOT NULL CHECK (status IN ('registered', 'suspended', 'exercised', 'expired',
                                                                   'cancelled', 'terminated')),
    suspended_since          date,
    units_issued             bigint      NOT NULL CHECK (units_issued > 0),
    units_outstanding        bigint      NOT NULL CHECK (units_outstanding >= 0),
    units_exercised          bigint      NOT NULL DEFAULT 0 CHECK (units_exercised >= 0),
    units_cancelled          bigint      NOT NULL DEFAULT 0 CHECK (units_cancelled >= 0),
    units_expired            bigint      NOT NULL DEFAULT 0 CHECK (units_expired >= 0),
    approval_id              text        NOT NULL,
    registered_at            timestamptz NOT NULL,
    last_position            bigint      NOT NULL,
    CONSTRAINT warrant_series_units_add_up
        CHECK (units_issued = units_outstanding + units_exercised + units_cancelled + units_expired),
    CHECK ((status = 'suspended') = (suspended_since IS NOT NULL))
);
CREATE INDEX warrant_series_target ON warrant_series (target_uscc);
CREATE INDEX warrant_series_status ON warrant_series (status, valid_until);

CREATE TABLE holding (
    series_code    text        NOT NULL REFERENCES warrant_series,
    account_id     text        NOT NULL REFERENCES account,
    investor_id    text        NOT NULL REFERENCES investor,
    available      bigint      NOT NULL CHECK (available >= 0),
    pledged        bigint      NOT NULL CHECK (pledged >= 0),
    frozen         bigint      NOT NULL CHECK (frozen >= 0),
    cost_fen       bigint      NOT NULL CHECK (cost_fen >= 0),
    holders        text[]      NOT NULL,
    confirmed_at   timestamptz,
    last_position  bigint      NOT NULL,
    PRIMARY KEY (series_code, account_id)
);
CREATE INDEX holding_account ON holding (account_id);
CREATE INDEX holding_investor ON holding (investor_id);

CREATE TABLE series_holder_ever (
    series_code  text NOT NULL REFERENCES warrant_series,
    holder_id    text NOT NULL,
    PRIMARY KEY (series_code, holder_id)
);

CREATE TABLE warrant_lot (
    lot_id            text    PRIMARY KEY,
    series_code       text    NOT NULL REFERENCES warrant_series,
    account_id        text    NOT NULL,
    units             bigint  NOT NULL CHECK (units > 0),
    parent            text    REFERENCES warrant_lot,
    origin            text    NOT NULL,
    active            boolean NOT NULL,
    created_position  bigint  NOT NULL
);
CREATE INDEX warrant_lot_active ON warrant_lot (series_code, account_id, created_position) WHERE active;

CREATE TABLE trade_interval (
    series_code  text NOT NULL REFERENCES warrant_series,
    investor_id  text NOT NULL,
    last_buy     date,
    last_sell    date,
    PRIMARY KEY (series_code, investor_id)
);

CREATE TABLE warrant_exercise (
    exercise_id      text        PRIMARY KEY,
    series_code      text        NOT NULL REFERENCES warrant_series,
    account_id       text        NOT NULL,
    investor_id      text        NOT NULL,
    units            bigint      NOT NULL CHECK (units > 0),
    amount           numeric     NOT NULL CHECK (amount >= 0),
    method           text        NOT NULL,
    payment_due_fen  bigint      NOT NULL CHECK (payment_due_fen >= 0),
    payee_kind       text        NOT NULL,
    payee_id         text        NOT NULL,
    exercised_on     date        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('awaiting_confirmation', 'confirmed')),
    confirmed_by     text,
    last_position    bigint      NOT NULL
);
CREATE INDEX warrant_exercise_series ON warrant_exercise (series_code);

-- 股东名册: shares (or yuan of registered capital) per holder of each enterprise.
CREATE TABLE share_register (
    uscc           text    NOT NULL REFERENCES enterprise,
    holder_id      text    NOT NULL,
    holder_name    text,
    amount         numeric NOT NULL CHECK (amount >= 0),
    last_position  bigint  NOT NULL,
    PRIMARY KEY (uscc, holder_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON warrant_series, holding, series_holder_ever, warrant_lot, trade_interval,
    warrant_exercise, share_register TO registry_app;

-- Four-eyes approval requests and the trading calendar: projections of approval.* and calendar.* events.

CREATE TABLE approval_request (
    approval_id      text        PRIMARY KEY,
    action           text        NOT NULL,
    payload          jsonb       NOT NULL,
    reason           text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by     text        NOT NULL,
    requested_at     timestamptz NOT NULL,
    decided_by       text,
    decided_at       timestamptz,
    decision_reason  text,
    last_position    bigint      NOT NULL,
    -- four-eyes in the database too: nobody decides their own request
    CHECK (decided_by IS NULL OR decided_by <> requested_by),
    CHECK ((status = 'pending') = (decided_by IS NULL))
);
CREATE INDEX approval_request_status ON approval_request (status, approval_id);

-- Every day of the known span, trading or not; the span itself is one row.
CREATE TABLE trading_day (
    day            date    PRIMARY KEY,
    trading        boolean NOT NULL,
    last_position  bigint  NOT NULL
);

CREATE TABLE calendar_span (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    first_day      date    NOT NULL,
    last_day       date    NOT NULL CHECK (last_day >= first_day),
    source         text    NOT NULL,
    last_position  bigint  NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON approval_request, trading_day, calendar_span TO registry_app;

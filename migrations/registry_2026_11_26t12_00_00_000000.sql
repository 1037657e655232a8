-- Warrant valuations (认股权估值): the projection of valuation.recorded events. The event is the record;
-- this table answers "what is the latest value per unit of a series on a date".

CREATE TABLE valuation (
    valuation_id      text        PRIMARY KEY CHECK (valuation_id ~ '^V[0-9]{8,}$'),
    series_code       text        NOT NULL REFERENCES warrant_series,
    valuation_date    date        NOT NULL,
    model             text        NOT NULL,
    model_version     text        NOT NULL,
    quantlib_version  text        NOT NULL,
    value_per_unit    numeric     NOT NULL CHECK (value_per_unit >= 0),
    series_terms      jsonb       NOT NULL,
    inputs            jsonb       NOT NULL,
    sources           jsonb       NOT NULL,
    result            jsonb       NOT NULL,
    recorded_at       timestamptz NOT NULL,
    recorded_by       text        NOT NULL,
    last_position     bigint      NOT NULL UNIQUE
);
-- the latest valuation of a series on or before a date: newest date first, then the later record
CREATE INDEX valuation_series_date ON valuation (series_code, valuation_date DESC, last_position DESC);

GRANT SELECT, INSERT, UPDATE, DELETE ON valuation TO registry_app;

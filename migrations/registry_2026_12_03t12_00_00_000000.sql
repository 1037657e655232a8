-- registry.fields.MAX_UNITS: the most units one series issues (warrants.domain.check_terms refuses more).
-- Sums of units in the register stay far inside bigint; the database holds the bound as well.
ALTER TABLE warrant_series
    ADD CONSTRAINT warrant_series_units_issued_max CHECK (units_issued <= 1000000000000);

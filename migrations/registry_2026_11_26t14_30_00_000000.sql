-- The stage vocabulary of the listing pipeline (registry.listing.domain.Stage), the qualified-investor
-- categories (registry.parties.qualification.QualificationCategory) and the 专精特新 levels
-- (registry.parties.domain.SpecialisedLevel) are closed lists: a projection that wrote anything else
-- would be a bug, so the database refuses it as it already refuses unknown account statuses.

ALTER TABLE listing_stage
    ADD CONSTRAINT listing_stage_stage_known CHECK (stage IN (
        'applied', 'incubation', 'standardisation', 'cultivation', 'listing_reserve', 'neeq_application',
        'neeq_base', 'neeq_innovation', 'bse_application', 'bse_listed', 'exited', 'rejected', 'withdrawn',
        'suspended')),
    -- suspension is from a stage in which the enterprise is listed; a board is one of the market's tiers
    ADD CONSTRAINT listing_stage_suspended_from_known CHECK (suspended_from IN (
        'incubation', 'standardisation', 'cultivation', 'listing_reserve', 'neeq_base', 'neeq_innovation',
        'bse_listed')),
    ADD CONSTRAINT listing_stage_board_known CHECK (board IN ('incubation', 'standardisation', 'cultivation'));

ALTER TABLE listing_move
    ADD CONSTRAINT listing_move_from_stage_known CHECK (from_stage IN (
        'applied', 'incubation', 'standardisation', 'cultivation', 'listing_reserve', 'neeq_application',
        'neeq_base', 'neeq_innovation', 'bse_application', 'bse_listed', 'exited', 'rejected', 'withdrawn',
        'suspended')),
    ADD CONSTRAINT listing_move_to_stage_known CHECK (to_stage IN (
        'applied', 'incubation', 'standardisation', 'cultivation', 'listing_reserve', 'neeq_application',
        'neeq_base', 'neeq_innovation', 'bse_application', 'bse_listed', 'exited', 'rejected', 'withdrawn',
        'suspended')),
    ADD CONSTRAINT listing_move_stage_changes CHECK (from_stage IS DISTINCT FROM to_stage);

ALTER TABLE security_code
    ADD CONSTRAINT security_code_board_known CHECK (board IN ('incubation', 'standardisation', 'cultivation'));

ALTER TABLE qualification
    ADD CONSTRAINT qualification_category_known CHECK (category IN (
        'financial_institution', 'institution_net_assets', 'natural_person'));

ALTER TABLE enterprise
    ADD CONSTRAINT enterprise_specialised_level_known CHECK (specialised_level IN (
        'none', 'innovative_sme', 'provincial', 'little_giant'));

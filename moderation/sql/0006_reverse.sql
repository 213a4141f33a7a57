-- Reverses migration moderation 0006: the trigger, its function and the claim function.
DROP TRIGGER IF EXISTS moderation_case_queue_sync ON moderation_case;
DROP FUNCTION IF EXISTS moderation_case_queue_sync();
DROP FUNCTION IF EXISTS moderation_claim_next(integer, boolean, timestamptz, timestamptz,
    integer, text, jsonb, boolean);
ALTER TABLE moderation_case RESET (fillfactor);

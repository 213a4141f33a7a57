-- PostgreSQL keeps QueueEntry in step with moderation_case. One trigger instead of a call in
-- every workflow that touches a case: intake, claim, renew, release, reassign, lease expiry,
-- decisions, escalations and retention all go through it, including queryset .update()s.
-- Installed by migration moderation 0006; its function is replaced by 0007_queue_sync.sql.
CREATE OR REPLACE FUNCTION moderation_case_queue_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('open', 'in_review') THEN
        INSERT INTO moderation_queueentry AS q
            (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
        VALUES (NEW.id, NEW.priority, NEW.sla_due_at, NEW.restricted,
                CASE WHEN NEW.status = 'in_review' THEN NEW.claimed_by_id END,
                CASE WHEN NEW.status = 'in_review' THEN NEW.lease_expires_at END)
        ON CONFLICT (case_id) DO UPDATE
            SET priority = EXCLUDED.priority, sla_due_at = EXCLUDED.sla_due_at,
                restricted = EXCLUDED.restricted, holder_id = EXCLUDED.holder_id,
                lease_expires_at = EXCLUDED.lease_expires_at
            WHERE (q.priority, q.sla_due_at, q.restricted, q.holder_id, q.lease_expires_at)
                IS DISTINCT FROM (EXCLUDED.priority, EXCLUDED.sla_due_at, EXCLUDED.restricted,
                                  EXCLUDED.holder_id, EXCLUDED.lease_expires_at);
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM moderation_queueentry WHERE case_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER moderation_case_queue_sync
AFTER INSERT OR UPDATE OF status, priority, sla_due_at, restricted, claimed_by_id,
    lease_expires_at ON moderation_case
FOR EACH ROW EXECUTE FUNCTION moderation_case_queue_sync();
INSERT INTO moderation_queueentry
    (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
SELECT id, priority, sla_due_at, restricted,
       CASE WHEN status = 'in_review' THEN claimed_by_id END,
       CASE WHEN status = 'in_review' THEN lease_expires_at END
FROM moderation_case WHERE status IN ('open', 'in_review');
-- Room on each case page for the new version of a claimed row, so claims stay HOT updates
-- (applies to pages written from now on; VACUUM FULL rewrites older ones).
ALTER TABLE moderation_case SET (fillfactor = 80);
-- Claims leave dead entries at the head of the claim indexes; beat vacuums this small table
-- every 10 s (moderation.vacuum_queue) and autovacuum is the backstop.
ALTER TABLE moderation_queueentry SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_scale_factor = 0.05);

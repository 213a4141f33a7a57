-- The claim-queue trigger updates the queue entry in place before it tries an insert
-- (migration moderation 0007; see its docstring for why).
CREATE OR REPLACE FUNCTION moderation_case_queue_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_holder integer;
    v_lease timestamptz;
BEGIN
    IF NEW.status NOT IN ('open', 'in_review') THEN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM moderation_queueentry WHERE case_id = NEW.id;
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.status = 'in_review' THEN
        v_holder := NEW.claimed_by_id;
        v_lease := NEW.lease_expires_at;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        UPDATE moderation_queueentry AS q
        SET priority = NEW.priority, sla_due_at = NEW.sla_due_at, restricted = NEW.restricted,
            holder_id = v_holder, lease_expires_at = v_lease
        WHERE q.case_id = NEW.id
          AND (q.priority, q.sla_due_at, q.restricted, q.holder_id, q.lease_expires_at)
              IS DISTINCT FROM (NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease);
        IF FOUND THEN
            RETURN NULL;
        END IF;
        INSERT INTO moderation_queueentry
            (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
        VALUES (NEW.id, NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease)
        ON CONFLICT (case_id) DO NOTHING;
    ELSE
        INSERT INTO moderation_queueentry
            (case_id, priority, sla_due_at, restricted, holder_id, lease_expires_at)
        VALUES (NEW.id, NEW.priority, NEW.sla_due_at, NEW.restricted, v_holder, v_lease);
    END IF;
    RETURN NULL;
END
$$;

-- Live alerts for the dashboard: every row stored in security_alerts is announced on the channel
-- `security_alerts_stored` (payload: its alert_id) when its transaction commits, so the dashboard's
-- server-sent events push it within milliseconds instead of polling. A redelivered alert that the
-- loader's ON CONFLICT DO NOTHING skips fires nothing (row triggers fire for inserted rows only).

CREATE OR REPLACE FUNCTION notify_security_alert_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('security_alerts_stored', NEW.alert_id);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS security_alerts_stored ON security_alerts;
CREATE TRIGGER security_alerts_stored AFTER INSERT ON security_alerts
    FOR EACH ROW EXECUTE FUNCTION notify_security_alert_stored();

-- the dashboard's catch-up read ("stored since ...") after a missed notification or a reconnect
CREATE INDEX IF NOT EXISTS security_alerts_stored_at ON security_alerts (stored_at);

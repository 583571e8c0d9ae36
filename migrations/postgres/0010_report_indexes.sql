-- The report's counts (`sspr-bridge report`, /admin) read only these columns, so each count is
-- answered from one index instead of a read of every audit row of the period: on a year of one
-- million rows, seconds instead of tens of seconds (benches/report.rs).
-- Activity: rows of a few event kinds since a time, counted by method and outcome.
CREATE INDEX audit_events_report_activity ON audit_events (event, at_ms, method, outcome);
-- Refusals: failed and denied rows since a time, counted by reason.
CREATE INDEX audit_events_report_refusals ON audit_events (outcome, at_ms, reason);

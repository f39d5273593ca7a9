-- Analytics opt-out (issue 12): a person may stop the tracking of what they do.
-- Read by analytics_event.send (client events refused) and by the analytics worker's
-- insert (storage/analytics.py), which drops an opted-out person's client events and
-- stores their server events without user_id or ip_hash, so owners' counts stay whole.
ALTER TABLE users ADD COLUMN analytics_opt_out boolean NOT NULL DEFAULT false;

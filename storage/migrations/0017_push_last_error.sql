-- push_subscriptions.last_error is shown to the subscription's owner. Older versions stored
-- the push service's response body ("HTTP 400: <body>") and exception texts there; it now
-- holds only the server's own wording. Trim what they stored.
UPDATE push_subscriptions
SET last_error = CASE
    WHEN last_error ~ '^HTTP [0-9]{3}' THEN substring(last_error FROM '^HTTP [0-9]{3}')
    WHEN last_error LIKE 'push service unreachable%' THEN 'push service unreachable'
    WHEN last_error LIKE 'push relay unreachable%' THEN 'push relay unreachable'
    ELSE 'delivery failed'
END
WHERE last_error IS NOT NULL;

-- Networks (docs/networks.md): indexes for the lists 0008 does not cover, and for the
-- reverse look-ups an account deletion makes. Every list pages newest first with the
-- other user's id as tie-break, so each index is (owner, created_at DESC, other).
CREATE INDEX follow_requests_sent ON follow_requests (requester_id, created_at DESC, target_id);
CREATE INDEX friend_requests_sent ON friend_requests (sender_id, created_at DESC, recipient_id);
CREATE INDEX close_friends_recent ON close_friends (user_id, created_at DESC, friend_id);
CREATE INDEX close_friends_member ON close_friends (friend_id);
CREATE INDEX user_mutes_recent ON user_mutes (muter_id, created_at DESC, muted_id);
CREATE INDEX user_mutes_muted ON user_mutes (muted_id);

-- Feeds (docs/feeds.md): the home feed merges, per followed author and per clique, an index
-- range of the items a feed can show. These partial indexes hold exactly those items (no
-- comments, no stories, no tombstones), so each per-source probe is an index-only range
-- that never steps over rows the feed would drop.
CREATE INDEX items_feed_author ON items (author_id, created_at DESC, id DESC)
    WHERE root_id IS NULL AND deleted_at IS NULL AND kind IN ('post', 'notice', 'share', 'slide');
CREATE INDEX items_feed_clique ON items (clique_id, created_at DESC, id DESC)
    WHERE clique_id IS NOT NULL AND root_id IS NULL AND deleted_at IS NULL
      AND kind IN ('post', 'notice', 'share', 'slide');

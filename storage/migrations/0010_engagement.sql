-- Engagement on items: docs/content.md, "Engagement and live updates".

-- "Who reacted", newest first, for all kinds and for one kind.
CREATE INDEX item_reactions_recent ON item_reactions (item_id, created_at DESC, user_id DESC);
CREATE INDEX item_reactions_kind_recent
    ON item_reactions (item_id, kind, created_at DESC, user_id DESC);

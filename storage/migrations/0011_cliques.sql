-- Cliques (docs/cliques.md): one owner per clique, the indexes of the clique lists, and
-- a deleted clique's items hidden from everyone but their authors.

ALTER TABLE cliques
    ADD CONSTRAINT cliques_name_length CHECK (char_length(name) BETWEEN 1 AND 80),
    ADD CONSTRAINT cliques_description_length CHECK (char_length(description) <= 2000);

-- Exactly one owner per clique: a hand-over demotes the old owner before promoting the new.
CREATE UNIQUE INDEX clique_members_one_owner ON clique_members (clique_id) WHERE role = 'owner';
-- clique.list_mine: a user's cliques, most recently joined first.
CREATE INDEX clique_members_mine ON clique_members (user_id, joined_at DESC, clique_id DESC);
-- clique.requests and clique.bans: newest first.
CREATE INDEX clique_join_requests_recent ON clique_join_requests (clique_id, created_at DESC, user_id DESC);
CREATE INDEX clique_bans_recent ON clique_bans (clique_id, created_at DESC, user_id DESC);
-- clique.search pages live cliques newest first.
CREATE INDEX cliques_live_recent ON cliques (created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- 0008's rule, with one change in the clique branch: a soft-deleted clique's items are
-- visible to nobody but their authors (clique.delete: "everything answers not_found").
CREATE OR REPLACE FUNCTION hs_audience_allows(viewer uuid, author uuid, visibility text, clique uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN viewer = author THEN true
        WHEN viewer IS NULL THEN visibility = 'public' AND clique IS NULL
             AND NOT (SELECT is_private FROM users WHERE id = author)
        WHEN hs_blocked(viewer, author) THEN false
        WHEN clique IS NOT NULL THEN
            NOT EXISTS (SELECT 1 FROM clique_bans b WHERE b.clique_id = clique AND b.user_id = viewer)
            AND EXISTS (SELECT 1 FROM cliques c WHERE c.id = clique AND c.deleted_at IS NULL
                        AND (NOT c.is_private
                             OR EXISTS (SELECT 1 FROM clique_members m
                                        WHERE m.clique_id = clique AND m.user_id = viewer)))
        WHEN visibility = 'public' THEN
            NOT (SELECT is_private FROM users WHERE id = author)
            OR EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = viewer AND f.followee_id = author)
            OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'followers' THEN
            EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = viewer AND f.followee_id = author)
            OR EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'friends' THEN
            EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = author AND f.friend_id = viewer)
        WHEN visibility = 'close_friends' THEN
            EXISTS (SELECT 1 FROM close_friends f WHERE f.user_id = author AND f.friend_id = viewer)
        ELSE false
    END
$$;

-- Stories (items of kind 'story', see 0008_social.sql): who viewed each one, highlights that
-- keep chosen stories on a profile past their 24 hours, and the story a DM answers.
-- docs/stories.md describes the rules; expiry is compared with the caller's clock in every query.

-- One row per viewer and story: a second view is a no-op, so items.view_count counts people.
CREATE TABLE story_views (
    story_id  uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    viewer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at timestamptz NOT NULL,
    PRIMARY KEY (story_id, viewer_id)
);
-- story.viewers: newest first, per story.
CREATE INDEX story_views_recent ON story_views (story_id, viewed_at DESC, viewer_id DESC);

CREATE TABLE story_highlights (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          text NOT NULL,
    -- Shown on the profile; when NULL (or not visible to a viewer) the first visible story is.
    cover_story_id uuid REFERENCES items (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX story_highlights_owner ON story_highlights (owner_id, created_at DESC, id DESC);

-- The stories of a highlight, in the owner's order (position 0 first).
CREATE TABLE story_highlight_items (
    highlight_id uuid NOT NULL REFERENCES story_highlights (id) ON DELETE CASCADE,
    story_id     uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    position     integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (highlight_id, story_id)
);
-- "Is this story in a highlight?": highlight reads past expiry, and the media purge.
CREATE INDEX story_highlight_items_story ON story_highlight_items (story_id);

-- A user's stories by expiry: the active tray, the 50-active limit and the archive.
CREATE INDEX items_stories ON items (author_id, expires_at DESC, id DESC) WHERE kind = 'story';

-- A DM sent by story.reply names the story it answers. No foreign key: the message stays
-- (with a dangling reference) whatever happens to the story.
ALTER TABLE messages ADD COLUMN story_id uuid;

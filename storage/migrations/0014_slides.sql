-- Slides (short videos). A slide is an items row of kind 'slide': caption in body, its
-- processing state, effects, video and credits in data (docs/slides.md lists the keys).
-- This adds the view log that makes view counts one per viewer per window, and the
-- indexes the slide feeds and lists read.

-- The last counted view of a slide per viewer: a view counts again only after the
-- window (docs/slides.md) has passed since the one recorded here.
CREATE TABLE slide_views (
    slide_id  uuid NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    viewer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    viewed_at timestamptz NOT NULL,
    PRIMARY KEY (slide_id, viewer_id)
);
-- Recent views per slide, for the trending score.
CREATE INDEX slide_views_recent ON slide_views (slide_id, viewed_at);

-- The following feed: each followed author's slides, newest first.
CREATE INDEX items_slides_author ON items (author_id, created_at DESC, id DESC)
    WHERE kind = 'slide' AND deleted_at IS NULL;
-- Trending candidates: recent slides.
CREATE INDEX items_slides_recent ON items (created_at DESC, id DESC)
    WHERE kind = 'slide' AND deleted_at IS NULL;
-- Video replies to a comment, newest first.
CREATE INDEX items_slide_replies ON items ((data ->> 'reply_to_comment_id'), created_at DESC, id DESC)
    WHERE kind = 'slide' AND data ? 'reply_to_comment_id';
-- Slides whose render job may never have been queued (the server died in between).
CREATE INDEX items_slides_unqueued ON items (created_at)
    WHERE kind = 'slide' AND data @> '{"queued": false}';

-- What the media worker makes of an upload: renditions, probed facts, and why it failed.

ALTER TABLE media
    ADD COLUMN blurhash       text,
    ADD COLUMN duration_ms    integer CHECK (duration_ms >= 0),
    -- A stable code (corrupt, decompression_bomb, ...); the message shown is derived from it.
    ADD COLUMN failure_reason text,
    ADD COLUMN processed_at   timestamptz,
    ADD CONSTRAINT media_failed_has_reason
        CHECK (status <> 'failed' OR failure_reason IS NOT NULL);

-- Uploads whose job may never have been queued (the server died between storing and
-- queueing); the media worker sweeps them up.
CREATE INDEX media_unqueued ON media (created_at) WHERE status = 'uploaded';

-- One row per variant the worker wrote; keys derive from the media id, so a redelivered
-- job rewrites the same rows and blobs.
CREATE TABLE media_renditions (
    media_id     uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    variant      text NOT NULL
                 CHECK (variant IN ('full', 'thumb_320', 'thumb_1280', 'poster', 'mp4')),
    storage_key  text NOT NULL,
    content_type text NOT NULL,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    PRIMARY KEY (media_id, variant)
);

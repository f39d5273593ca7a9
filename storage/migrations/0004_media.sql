-- Uploaded media (images and videos) and the messages that carry them.

CREATE TABLE media (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('image', 'video')),
    -- Sniffed from the bytes at upload, never taken from the client.
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- uploaded: the original is kept, not processed yet; the media worker moves it on.
    status       text NOT NULL DEFAULT 'uploaded'
                 CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    -- The blob store key of the original.
    storage_key  text NOT NULL,
    width        integer CHECK (width > 0),
    height       integer CHECK (height > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_owner ON media (owner_id, created_at DESC);

-- Which messages carry which media: a member of a message's conversation may fetch its media.
-- The owner may attach one upload to several messages (forwarding without re-uploading).
CREATE TABLE message_media (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    media_id   uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    position   smallint NOT NULL,
    PRIMARY KEY (message_id, media_id)
);
CREATE INDEX message_media_media ON message_media (media_id);

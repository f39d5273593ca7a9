-- clique.create takes an idempotency key like the other creates: one clique per (creator, key).
ALTER TABLE cliques ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX cliques_idempotency ON cliques (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

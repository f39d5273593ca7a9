"""Per-conversation message seqs (storage.messages.reserve_seq_blocks): unique and gap-free.

The persistence worker reserves a block of seqs per conversation for each batch, in the
batch's transaction. Many batches at once must get disjoint blocks that together cover
1..n with no hole, in any mix of conversations, without deadlocking; a batch that rolls
back gives its seqs back.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from storage.db import Database
from storage.messages import reserve_seq_blocks
from tests.storage.row_helpers import new_group, new_user

TIMEOUT = 30.0


async def reserve(db: Database, counts: dict[uuid.UUID, int],
                  hold_s: float = 0.0) -> dict[uuid.UUID, range]:
    """One batch's reservation, in its own transaction, held open a moment to overlap others."""
    async with db.transaction() as conn:
        firsts = await reserve_seq_blocks(conn, counts)
        if hold_s:
            await conn.execute("SELECT pg_sleep($1)", hold_s)
    return {c: range(first, first + counts[c]) for c, first in firsts.items()}


async def last_seq(db: Database, conversation_id: uuid.UUID) -> int:
    return int(await db.pool.fetchval("SELECT last_seq FROM conversations WHERE id = $1",
                                      conversation_id))


def assert_gap_free(blocks: list[range], total: int) -> None:
    seqs = sorted(s for block in blocks for s in block)
    assert seqs == list(range(1, total + 1)), "seqs repeat or leave a hole"


async def test_one_reservation_takes_the_next_block(db: Database) -> None:
    owner = await new_user(db)
    conversation = await new_group(db, owner)
    assert await reserve(db, {conversation: 3}) == {conversation: range(1, 4)}
    assert await reserve(db, {conversation: 1}) == {conversation: range(4, 5)}
    assert await last_seq(db, conversation) == 4


async def test_concurrent_reservations_are_unique_and_gap_free(db: Database) -> None:
    owner = await new_user(db)
    conversation = await new_group(db, owner)
    rng = random.Random(7)
    sizes = [rng.randint(1, 5) for _ in range(40)]
    async with asyncio.timeout(TIMEOUT):
        results = await asyncio.gather(*(reserve(db, {conversation: n}, hold_s=0.002)
                                         for n in sizes))
    blocks = [r[conversation] for r in results]
    assert [len(b) for b in blocks] == sizes
    assert_gap_free(blocks, sum(sizes))
    assert await last_seq(db, conversation) == sum(sizes)


async def test_batches_over_several_conversations_neither_deadlock_nor_mix(db: Database) -> None:
    owner = await new_user(db)
    conversations = [await new_group(db, owner) for _ in range(3)]
    rng = random.Random(11)
    batches: list[dict[uuid.UUID, int]] = []
    for _ in range(30):
        # Each batch names its conversations in its own order: the lock order must not depend
        # on it, or two batches locking the same rows crosswise would deadlock.
        chosen = rng.sample(conversations, rng.randint(1, 3))
        batches.append({c: rng.randint(1, 4) for c in chosen})
    async with asyncio.timeout(TIMEOUT):
        results = await asyncio.gather(*(reserve(db, b, hold_s=0.002) for b in batches))
    for conversation in conversations:
        wanted = [b[conversation] for b in batches if conversation in b]
        blocks = [r[conversation] for r in results if conversation in r]
        assert sorted(map(len, blocks)) == sorted(wanted)
        assert_gap_free(blocks, sum(wanted))
        assert await last_seq(db, conversation) == sum(wanted)


async def test_a_rolled_back_reservation_leaves_no_gap(db: Database) -> None:
    owner = await new_user(db)
    conversation = await new_group(db, owner)
    await reserve(db, {conversation: 2})

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with db.transaction() as conn:
            firsts = await reserve_seq_blocks(conn, {conversation: 5})
            assert firsts == {conversation: 3}
            raise Abandon  # the batch's insert failed: its transaction rolls back
    assert await reserve(db, {conversation: 1}) == {conversation: range(3, 4)}
    assert await last_seq(db, conversation) == 3

"""Whether a create repeats an earlier one: the same caller and idempotency key.

A command declares one of these as `is_retry`; the dispatcher does not count the rates of
a retry, whose answer is what the first call made (the handler finds and returns it), so a
client resending after a lost answer or a reconnect is never rate limited for it.
"""

from __future__ import annotations

from typing import Any

from handlers.context import Context
from storage import cliques as clique_store
from storage import items as item_store


async def item_retry(ctx: Context, data: Any) -> bool:
    """An item create (post, story, slide, ...) whose idempotency key made an item already."""
    key = getattr(data, "idempotency_key", None)
    return key is not None and await item_store.created_with_key(
        ctx.services.db, ctx.user.user_id, key) is not None


async def clique_retry(ctx: Context, data: Any) -> bool:
    """A clique create whose idempotency key made a clique already."""
    key = getattr(data, "idempotency_key", None)
    return key is not None and await clique_store.created_with_key(
        ctx.services.db, ctx.user.user_id, key) is not None

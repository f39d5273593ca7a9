"""Seed data for the feed benchmark: a power-law social graph and a million items, loaded with COPY.

Everything is drawn from one seeded random generator, so the same sizes give the same
data. Secondary indexes are dropped before the COPY and rebuilt after it (one sort per
index instead of a million random inserts), and foreign-key triggers are skipped
(session_replication_role = replica) since the generator only writes consistent rows.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.common import log

DAY_S = 86_400.0
# The tables the seed fills; their secondary indexes are rebuilt after the load.
TABLES = ("users", "follows", "friendships", "close_friends", "user_mutes", "user_blocks",
          "cliques", "clique_members", "clique_followers", "clique_bans", "items", "item_tags",
          "item_saves")
WORDS = ("coffee", "city", "sunset", "music", "weekend", "project", "run", "garden", "train",
         "photo", "friends", "dinner", "book", "concert", "rain", "beach", "code", "match",
         "market", "museum", "idea", "morning", "walk", "travel", "movie", "team", "launch")
TOP_KINDS = (("post", 0.72), ("notice", 0.15), ("share", 0.05), ("slide", 0.03), ("story", 0.05))
VISIBILITIES = (("public", 0.78), ("followers", 0.12), ("friends", 0.06),
                ("close_friends", 0.02), ("private", 0.02))
ITEM_COLUMNS = ("id", "kind", "author_id", "parent_id", "root_id", "shared_id", "clique_id", "body",
                "visibility", "reply_count", "share_count", "created_at", "deleted_at",
                "expires_at")
CHUNK = 50_000


@dataclass(frozen=True)
class SeedSizes:
    users: int
    items: int
    cliques: int
    seed: int = 20261124


@dataclass
class GraphStats:
    """What the generated graph looks like, for the report."""

    follows: int = 0
    friendships: int = 0
    private_users: int = 0
    followees_p50: int = 0
    followees_p99: int = 0
    followees_max: int = 0
    followers_max: int = 0
    accounts_1000_followers: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Progress:
    """One self-rewriting line on stderr: done/total, percent, elapsed time."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.shown = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.shown >= 0.5 or self.done >= self.total:
            self.shown = now
            pct = 100 * self.done / max(self.total, 1)
            print(f"\r[bench] {self.label}: {self.done:,}/{self.total:,} ({pct:.0f}%) "
                  f"{now - self.started:.1f} s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    x = rng.random()
    for value, share in table:
        x -= share
        if x < 0:
            return value
    return table[-1][0]


def _pct(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else 0


class Generator:
    """The whole data set, as rows ready for COPY."""

    def __init__(self, sizes: SeedSizes, now: datetime) -> None:
        self.sizes, self.now = sizes, now
        self.rng = random.Random(sizes.seed)
        self.user_ids = [uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in range(sizes.users)]
        self.stats = GraphStats()

    def _ago(self, max_days: float) -> datetime:
        return self.now - timedelta(seconds=self.rng.random() * max_days * DAY_S)

    def graph(self) -> dict[str, list[tuple[Any, ...]]]:
        """Users, follows (power law), friendships, close friends, blocks, mutes, cliques."""
        rng, n, ids = self.rng, self.sizes.users, self.user_ids
        private = [rng.random() < 0.05 for _ in range(n)]
        users = [(ids[u], f"fb{u}", f"Feed Bench {u}", private[u], self._ago(400)) for u in range(n)]
        blocked: set[tuple[int, int]] = set()
        while len(blocked) < n // 10:
            a, b = rng.randrange(n), rng.randrange(n)
            if a != b:
                blocked.add((a, b))

        def apart(a: int, b: int) -> bool:
            return (a, b) not in blocked and (b, a) not in blocked

        # Popularity is Pareto: a few accounts draw thousands of followers. Out-degree is
        # log-normal around 60 (most follow tens to a few hundred accounts).
        cum = list(itertools.accumulate(rng.paretovariate(1.3) for _ in range(n)))
        followees: list[list[int]] = []
        follows: list[tuple[Any, ...]] = []
        for u in range(n):
            degree = int(min(max(rng.lognormvariate(math.log(60), 0.9), 5), 1500))
            chosen = {v for v in rng.choices(range(n), cum_weights=cum, k=degree) if v != u and apart(u, v)}
            followees.append(sorted(chosen))
            follows.extend((ids[u], ids[v], self._ago(365)) for v in chosen)
        friends: set[tuple[int, int]] = set()
        for u in range(n):
            if followees[u] and rng.random() < 0.6:
                for v in rng.sample(followees[u], min(len(followees[u]), rng.randint(1, 12))):
                    friends.add((min(u, v), max(u, v)))
        friendships = []
        friends_of: dict[int, list[int]] = {}
        for a, b in friends:
            at = self._ago(365)
            friendships += [(ids[a], ids[b], at), (ids[b], ids[a], at)]
            friends_of.setdefault(a, []).append(b)
            friends_of.setdefault(b, []).append(a)
        close = []
        for u, mine in friends_of.items():
            if rng.random() < 0.3:
                close += [(ids[u], ids[v], self._ago(200)) for v in rng.sample(mine, min(len(mine), 8))]
        mutes = []
        for u in rng.sample(range(n), n // 5):
            if followees[u]:
                v = rng.choice(followees[u])
                until = rng.choice([None, None, None, self.now + timedelta(days=3),
                                    self.now - timedelta(days=3)])
                mutes.append((ids[u], ids[v], until, self._ago(60)))
        self.followees, self.friends_of = followees, friends_of
        self._clique_rows(private)
        counts = sorted(len(f) for f in followees)
        followers = Counter(v for f in followees for v in f)
        self.stats = GraphStats(
            follows=len(follows), friendships=len(friends), private_users=sum(private),
            followees_p50=_pct(counts, 0.5), followees_p99=_pct(counts, 0.99),
            followees_max=counts[-1], followers_max=max(followers.values(), default=0),
            accounts_1000_followers=sum(1 for c in followers.values() if c >= 1000))
        return {
            "users": users, "follows": follows, "friendships": friendships, "close_friends": close,
            "user_blocks": [(ids[a], ids[b], self._ago(100)) for a, b in blocked],
            "user_mutes": mutes, **self.clique_rows,
        }

    def _clique_rows(self, private_users: list[bool]) -> None:
        rng, n, ids = self.rng, self.sizes.users, self.user_ids
        cliques: list[tuple[Any, ...]] = []
        members: list[tuple[Any, ...]] = []
        followers: list[tuple[Any, ...]] = []
        bans: list[tuple[Any, ...]] = []
        self.clique_members: list[list[int]] = []
        self.clique_ids = [uuid.UUID(int=rng.getrandbits(128), version=4)
                           for _ in range(self.sizes.cliques)]
        for c, cid in enumerate(self.clique_ids):
            size = min(int(rng.paretovariate(1.2) * 20), n // 3)
            chosen = rng.sample(range(n), size)
            is_private = rng.random() < 0.15
            cliques.append((cid, f"Clique {c}", is_private, ids[chosen[0]], self._ago(300)))
            members += [(cid, ids[u], "owner" if k == 0 else "member", self._ago(300))
                        for k, u in enumerate(chosen)]
            self.clique_members.append(chosen)
            inside = set(chosen)
            outside = [u for u in rng.sample(range(n), min(n, size * 2)) if u not in inside]
            if not is_private:
                followers += [(cid, ids[u], self._ago(300)) for u in outside[: size]]
            bans += [(cid, ids[u], self._ago(100)) for u in outside[size: size + 3]]
        self.clique_rows: dict[str, list[tuple[Any, ...]]] = {"cliques": cliques, "clique_members": members,
                            "clique_followers": followers, "clique_bans": bans}

    def items(self) -> Iterator[list[tuple[Any, ...]]]:
        """Item rows in chunks: top-level items first (80%), then comments on them."""
        rng, n, ids, sizes = self.rng, self.sizes.users, self.user_ids, self.sizes
        activity = list(itertools.accumulate(rng.paretovariate(1.2) for _ in range(n)))
        total_top = int(sizes.items * 0.8)
        bodies = [" ".join(rng.choices(WORDS, k=rng.randint(4, 30))) for _ in range(500)]
        tags = [f"tag{t}" for t in range(300)]
        tag_weights = list(itertools.accumulate(1 / (t + 1) for t in range(300)))
        clique_weights = list(itertools.accumulate(len(m) for m in self.clique_members))
        self.item_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(sizes.items)]
        kinds: list[str] = []
        created: list[datetime] = []
        shared: set[tuple[int, int]] = set()
        rows: list[list[Any]] = []
        self.tag_rows: list[tuple[Any, ...]] = []
        authors = rng.choices(range(n), cum_weights=activity, k=sizes.items)
        for k in range(sizes.items):
            author = authors[k]
            at = self._ago(90)
            parent = shared_k = clique = deleted = expires = None
            visibility = "public"
            if k < total_top:
                kind = _pick(rng, TOP_KINDS)
                visibility = _pick(rng, VISIBILITIES)
                if kind == "story":
                    visibility = rng.choice(("public", "followers", "close_friends"))
                    expires = at + timedelta(days=1)
                elif kind == "share" and k > 0:
                    shared_k = rng.randrange(k)
                    if kinds[shared_k] not in ("post", "notice") or (author, shared_k) in shared:
                        kind, shared_k = "post", None
                    else:
                        shared.add((author, shared_k))
                elif kind == "share":
                    kind = "post"
                if kind == "post" and self.clique_ids and rng.random() < 0.04:
                    c = rng.choices(range(len(self.clique_ids)), cum_weights=clique_weights)[0]
                    clique, author, visibility = c, rng.choice(self.clique_members[c]), "public"
                if rng.random() < 0.005:
                    deleted = min(at + timedelta(hours=1), self.now)
            else:
                kind = "comment"
                parent = rng.randrange(total_top)
                while kinds[parent] == "share":
                    parent = rng.randrange(total_top)
                span = (self.now - created[parent]).total_seconds()
                at = created[parent] + timedelta(seconds=rng.random() * min(span, 3 * DAY_S))
            kinds.append(kind)
            created.append(at)
            body = None if deleted else rng.choice(bodies)
            if body is not None and rng.random() < 0.06:
                chosen = sorted(set(rng.choices(tags, cum_weights=tag_weights, k=rng.randint(1, 2))))
                body += " " + " ".join("#" + t for t in chosen)
                self.tag_rows += [(t, self.item_ids[k], at) for t in chosen]
            rows.append([self.item_ids[k], kind, ids[author], parent, parent, shared_k, clique, body,
                         visibility, 0, 0, at, deleted, expires])
        replies = Counter(r[3] for r in rows if r[3] is not None)
        shares = Counter(r[5] for r in rows if r[5] is not None)
        for k, row in enumerate(rows):
            row[9], row[10] = replies.get(k, 0), shares.get(k, 0)
        self.created, self.kinds = created, kinds
        self.stats.extra = {"top_level_items": total_top, "comments": sizes.items - total_top,
                            "tagged_items": len({r[1] for r in self.tag_rows})}
        for start in range(0, len(rows), CHUNK):
            yield [self._item_row(r) for r in rows[start:start + CHUNK]]

    def _item_row(self, r: list[Any]) -> tuple[Any, ...]:
        def ref(k: int | None) -> uuid.UUID | None:
            return None if k is None else self.item_ids[k]
        clique = None if r[6] is None else self.clique_ids[r[6]]
        return (r[0], r[1], r[2], ref(r[3]), ref(r[4]), ref(r[5]), clique, *r[7:])

    def saves(self) -> list[tuple[Any, ...]]:
        rng, n = self.rng, self.sizes.users
        top = [k for k, kind in enumerate(self.kinds) if kind in ("post", "notice", "slide")]
        rows = []
        for u in rng.sample(range(n), n // 3):
            for k in set(rng.sample(top, rng.randint(1, 40))):
                at = self.created[k] + (self.now - self.created[k]) * rng.random()
                rows.append((self.user_ids[u], self.item_ids[k], at))
        return rows


COLUMNS = {
    "users": ("id", "username", "display_name", "is_private", "created_at"),
    "follows": ("follower_id", "followee_id", "created_at"),
    "friendships": ("user_id", "friend_id", "created_at"),
    "close_friends": ("user_id", "friend_id", "created_at"),
    "user_blocks": ("blocker_id", "blocked_id", "created_at"),
    "user_mutes": ("muter_id", "muted_id", "until", "created_at"),
    "cliques": ("id", "name", "is_private", "created_by", "created_at"),
    "clique_members": ("clique_id", "user_id", "role", "joined_at"),
    "clique_followers": ("clique_id", "user_id", "created_at"),
    "clique_bans": ("clique_id", "user_id", "created_at"),
    "item_tags": ("tag", "item_id", "created_at"),
    "item_saves": ("user_id", "item_id", "created_at"),
}

COUNTERS = """
UPDATE users u SET follower_count = c.n FROM (SELECT followee_id AS id, count(*) AS n FROM follows
    GROUP BY 1) c WHERE u.id = c.id;
UPDATE users u SET following_count = c.n FROM (SELECT follower_id AS id, count(*) AS n FROM follows
    GROUP BY 1) c WHERE u.id = c.id;
UPDATE users u SET friend_count = c.n FROM (SELECT user_id AS id, count(*) AS n FROM friendships
    GROUP BY 1) c WHERE u.id = c.id;
UPDATE cliques q SET member_count = c.n FROM (SELECT clique_id AS id, count(*) AS n
    FROM clique_members GROUP BY 1) c WHERE q.id = c.id;
UPDATE cliques q SET follower_count = c.n FROM (SELECT clique_id AS id, count(*) AS n
    FROM clique_followers GROUP BY 1) c WHERE q.id = c.id;
"""


async def _drop_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the seeded tables' indexes that back no constraint; their definitions, to rebuild."""
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
           WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
        list(TABLES))
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]


async def seed(conn: asyncpg.Connection, sizes: SeedSizes) -> GraphStats:
    """Fill an empty, migrated database; returns what the graph looks like."""
    started = time.monotonic()
    gen = Generator(sizes, datetime.now(UTC))
    log(f"generating the graph of {sizes.users:,} users")
    tables = gen.graph()
    await conn.execute("SET maintenance_work_mem = '256MB'")
    try:
        await conn.execute("SET session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        log("not a superuser: foreign keys are checked during the load (slower)")
    definitions = await _drop_indexes(conn)
    for name in ("users", "cliques", "follows", "friendships", "close_friends", "user_blocks",
                 "user_mutes", "clique_members", "clique_followers", "clique_bans"):
        rows = tables[name]
        await conn.copy_records_to_table(name, records=rows, columns=COLUMNS[name])
        log(f"copied {len(rows):,} rows into {name}")
    progress = Progress("items", sizes.items)
    for chunk in gen.items():
        await conn.copy_records_to_table("items", records=chunk, columns=ITEM_COLUMNS)
        progress.add(len(chunk))
    progress.close()
    for name, rows in (("item_tags", gen.tag_rows), ("item_saves", gen.saves())):
        await conn.copy_records_to_table(name, records=rows, columns=COLUMNS[name])
        log(f"copied {len(rows):,} rows into {name}")
    await conn.execute("SET session_replication_role = DEFAULT")
    await conn.execute(COUNTERS)
    progress = Progress("rebuilding indexes", len(definitions))
    for definition in definitions:
        await conn.execute(definition)
        progress.add(1)
    progress.close()
    log("VACUUM ANALYZE (visibility map for index-only scans, planner statistics)")
    for name in TABLES:
        await conn.execute(f"VACUUM ANALYZE {name}")
    log(f"seeded in {time.monotonic() - started:.0f} s")
    return gen.stats

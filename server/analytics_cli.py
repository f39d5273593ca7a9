"""`hotspot analytics report`: the admin reports as tables in the terminal, charts with --png.

The figures come from the same functions the `analytics_report.*` commands answer with
(handlers/analytics_admin.py), so the terminal and the API never disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from config import Settings
from config.clock import utc_now
from handlers.analytics_admin import (
    active_users_report,
    activity_report,
    retention_report,
    signup_funnel_report,
)
from handlers.analytics_admin_schemas import (
    MAX_DAYS,
    MAX_WEEKS,
    ActiveUsersReport,
    ActivityReport,
    RetentionReport,
    SignupFunnelReport,
)
from server.admin_cli import _database

T = TypeVar("T")
# A query still running after this long says so on stderr, then again every interval.
PROGRESS_S = 2.0


def add_analytics_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    analytics = sub.add_parser("analytics", help="admin analytics reports")
    analytics_sub = analytics.add_subparsers(dest="action", required=True)
    report = analytics_sub.add_parser(
        "report", help="active users, retention cohorts, sign-up funnel and activity per day")
    report.add_argument("--days", type=int, default=30,
                        help=f"UTC days to report, ending today (1-{MAX_DAYS}, default 30)")
    report.add_argument("--weeks", type=int, default=8,
                        help=f"weekly sign-up cohorts (1-{MAX_WEEKS}, default 8)")
    report.add_argument("--png", type=Path, metavar="FILE", help="also draw the charts to FILE")
    analytics.set_defaults(admin=cmd_analytics)


async def _progress(label: str, work: Awaitable[T]) -> T:
    """Await `work`, telling stderr what runs and, when it takes long, that it still does."""
    started = time.monotonic()
    print(f"hotspot: {label} ...", file=sys.stderr, flush=True)
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=PROGRESS_S)
        if done:
            break
        print(f"hotspot: {label}: still running ({time.monotonic() - started:.0f} s)",
              file=sys.stderr, flush=True)
    result = task.result()
    print(f"hotspot: {label}: {time.monotonic() - started:.2f} s", file=sys.stderr, flush=True)
    return result


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_text(active: ActiveUsersReport, activity: ActivityReport,
                retention: RetentionReport, funnel: SignupFunnelReport) -> str:
    as_of = active.as_of.isoformat() if active.as_of else "no events stored"
    parts = [
        f"as of {as_of} (computed {active.computed_at.isoformat()}); raw events kept since "
        f"{active.raw_since} ('-': only roll-ups remain)",
        "",
        f"Active users: DAU {_n(active.dau)}  WAU {_n(active.wau)}  MAU {_n(active.mau)}",
        "",
        "Per day",
        _table(["day", "active", "signups", "messages", "items"],
               [[str(a.day), _n(a.users), str(b.signups), str(b.messages), str(b.items)]
                for a, b in zip(active.days, activity.days, strict=True)]),
        "",
        f"Sign-up funnel (signed up since {funnel.first_day})",
        _table(["step", "users", "rate"],
               [[s.step, str(s.users), f"{s.rate:.1%}"] for s in funnel.steps]),
        "",
        "Weekly retention (share of each sign-up cohort active k weeks later)",
    ]
    weeks = max((len(c.retained) for c in retention.cohorts), default=0)
    parts.append(_table(["cohort", "size", *(f"w{k}" for k in range(weeks))],
                        [[str(c.week), str(c.size),
                          *(f"{r:.0%}" for r in c.rates), *([""] * (weeks - len(c.rates)))]
                         for c in retention.cohorts]))
    return "\n".join(parts)


def render_png(path: Path, active: ActiveUsersReport, activity: ActivityReport,
               retention: RetentionReport, funnel: SignupFunnelReport) -> None:
    # Agg draws to a file without a display; imported here so the server never loads it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax_active, ax_activity), (ax_funnel, ax_retention)) = plt.subplots(
        2, 2, figsize=(14, 9), constrained_layout=True)
    days = [a.day for a in active.days if a.users is not None]
    ax_active.plot(days, [a.users for a in active.days if a.users is not None], marker=".")
    ax_active.set_title(f"Daily active users (WAU {_n(active.wau)}, MAU {_n(active.mau)})")
    all_days = [d.day for d in activity.days]
    for label, values in (("messages", [d.messages for d in activity.days]),
                          ("items", [d.items for d in activity.days]),
                          ("sign-ups", [d.signups for d in activity.days])):
        ax_activity.plot(all_days, values, label=label)
    ax_activity.set_title("Per day")
    ax_activity.legend()
    for ax in (ax_active, ax_activity):
        ax.tick_params(axis="x", labelrotation=45)
    ax_funnel.barh([s.step for s in reversed(funnel.steps)],
                   [s.users for s in reversed(funnel.steps)])
    ax_funnel.set_title(f"Sign-up funnel since {funnel.first_day}")
    weeks = max((len(c.rates) for c in retention.cohorts), default=1)
    grid = [[*c.rates, *([float("nan")] * (weeks - len(c.rates)))] for c in retention.cohorts]
    if grid:
        image = ax_retention.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax_retention.set_yticks(range(len(grid)),
                                [f"{c.week} ({c.size})" for c in retention.cohorts])
        fig.colorbar(image, ax=ax_retention)
    ax_retention.set_xlabel("weeks after sign-up")
    ax_retention.set_title("Weekly retention by sign-up cohort")
    fig.suptitle(f"HotSpot analytics as of {active.as_of or active.computed_at:%Y-%m-%d %H:%M} UTC")
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    keep = settings.analytics_retention_days
    async with _database(settings) as db:
        now = utc_now()
        active = await _progress("active users (raw events)",
                                 active_users_report(db, now, keep, args.days))
        activity = await _progress("activity per day (day roll-ups)",
                                   activity_report(db, now, keep, args.days))
        retention = await _progress("retention cohorts (raw events)",
                                    retention_report(db, now, keep, args.weeks))
        funnel = await _progress("sign-up funnel (raw events)",
                                 signup_funnel_report(db, now, keep, args.days))
    print(render_text(active, activity, retention, funnel))
    if args.png is not None:
        try:
            render_png(args.png, active, activity, retention, funnel)
        except OSError as exc:
            print(f"hotspot: cannot write {args.png}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"hotspot: charts written to {args.png}", file=sys.stderr)
    return 0


def cmd_analytics(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.days <= MAX_DAYS or not 1 <= args.weeks <= MAX_WEEKS:
        print(f"hotspot: --days must be 1-{MAX_DAYS} and --weeks 1-{MAX_WEEKS}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_report(args, settings))
    except OSError as exc:
        print(f"hotspot: PostgreSQL is not reachable: {exc}", file=sys.stderr)
        return 1

"""Rate limits as declarations: a command names the rates it counts against.

The numbers live in settings (config.rates, HOTSPOT_RATE_*); the dispatcher counts every
rate a command declares, for both doors, after the input is valid and before the handler
runs. The few rates that count only some outcomes (a mail actually sent, a wrong password)
are charged from the handler with the same Rate values, so every key and number still comes
from one catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from channels.ratelimit import enforce, refuse_if_over
from config.rates import Rates
from handlers.context import Context

# Who a rate counts: the calling user, the client's IP address, the socket connection, or
# a subject the handler names (an account being reset, a login name being guessed).
Per = Literal["user", "ip", "connection", "subject"]


@dataclass(frozen=True)
class Rate:
    """A named rate (a field of config.rates.Rates) and what it is counted per."""

    name: str
    per: Per = "user"

    def __post_init__(self) -> None:
        if self.name not in Rates.names():
            raise ValueError(f"no rate named {self.name!r} in config.rates.Rates")

    def key(self, ctx: Context, subject: str | None = None) -> str:
        """The limiter key of this rate for one call."""
        if subject is None:
            if self.per == "user":
                subject = str(ctx.user.user_id)
            elif self.per == "ip":
                subject = ctx.ip or "unknown"
            elif self.per == "connection":
                subject = ctx.sid or "rest"
            else:
                raise ValueError(f"rate {self.name} is counted per subject: pass one")
        return f"{self.name}:{self.per}:{subject}"


async def charge(ctx: Context, rate: Rate, subject: str | None = None) -> None:
    """Count one event against the rate; rate_limited once its window's limit is passed."""
    spec = ctx.services.settings.rates.spec(rate.name)
    await enforce(ctx.services.limiter, rate.key(ctx, subject), spec.limit, spec.window_s)


async def refuse_if_failed(ctx: Context, rate: Rate, subject: str | None = None) -> None:
    """For a failure counter: refuse, without counting, once its limit is reached."""
    spec = ctx.services.settings.rates.spec(rate.name)
    await refuse_if_over(ctx.services.limiter, rate.key(ctx, subject), spec.limit)


async def count_failure(ctx: Context, rate: Rate, subject: str | None = None) -> None:
    """For a failure counter: count one failure (never refuses by itself)."""
    spec = ctx.services.settings.rates.spec(rate.name)
    await ctx.services.limiter.incr(rate.key(ctx, subject), spec.window_s)


async def clear(ctx: Context, rate: Rate, subject: str | None = None) -> None:
    """Reset a counter (a successful login clears its account's failures)."""
    await ctx.services.limiter.reset(rate.key(ctx, subject))


async def within(ctx: Context, rate: Rate, subject: str | None = None) -> bool:
    """Count one event; whether it was within the limit (for limits that refuse silently)."""
    spec = ctx.services.settings.rates.spec(rate.name)
    count, _ = await ctx.services.limiter.incr(rate.key(ctx, subject), spec.window_s)
    return count <= spec.limit

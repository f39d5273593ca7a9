"""The Twilio-compatible SMS adapter: the Messages API over HTTP with basic auth."""

from __future__ import annotations

import asyncio
import logging
from email.utils import parsedate_to_datetime

import aiohttp

from config.clock import utc_now
from workers.delivery import PermanentSendError, TransientSendError

log = logging.getLogger(__name__)

# Retry-After up to this long is waited out here; longer goes back to the queue's backoff,
# so a worker slot is not held for minutes.
MAX_INLINE_WAIT_S = 10.0
MAX_INLINE_RETRIES = 2


def retry_after_s(header: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if unusable."""
    if not header:
        return None
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utc_now()).total_seconds())


class TwilioSms:
    """POSTs To/From/Body to {base}/2010-04-01/Accounts/{sid}/Messages.json."""

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, sender: str, timeout_s: float = 10.0
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.headers = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}
        self.sender = sender
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, to: str, text: str) -> None:
        """Send one SMS: 4xx is permanent (401/403 not), 5xx and timeouts transient, 429 waited."""
        for attempt in range(MAX_INLINE_RETRIES + 1):
            wait = await self._post(to, text)
            if wait is None:
                return
            if wait > MAX_INLINE_WAIT_S or attempt == MAX_INLINE_RETRIES:
                raise TransientSendError(f"SMS provider rate limited us (Retry-After {wait:.0f}s)")
            log.info("sms provider asked to wait", extra={"retry_after_s": wait})
            await asyncio.sleep(wait)

    async def _post(self, to: str, text: str) -> float | None:
        """None once accepted; the seconds to wait when the provider answers 429."""
        form = {"To": to, "From": self.sender, "Body": text}
        try:
            async with self._client().post(self.url, data=form) as resp:
                body = await resp.text()
                if resp.status == 429:
                    wait = retry_after_s(resp.headers.get("Retry-After"))
                    return 1.0 if wait is None else wait
                if resp.status in (401, 403):
                    # Our credentials, not this message: retry, and replay once they are fixed.
                    raise TransientSendError(f"SMS provider refused our account ({resp.status})")
                if 400 <= resp.status < 500:
                    raise PermanentSendError(f"SMS provider refused ({resp.status}): {body[:200]}")
                if resp.status >= 300:
                    raise TransientSendError(f"SMS provider error {resp.status}: {body[:200]}")
                return None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientSendError(f"SMS provider unreachable: {exc!r}") from exc

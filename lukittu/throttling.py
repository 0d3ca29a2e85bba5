"""Rate limiting per API key, in fixed windows counted in Django's cache (Redis in production),
so every worker process shares one count and no client header can reset it."""

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger("lukittu.throttling")


def parse_rate(rate: str) -> tuple[int, int]:
    limit, period = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    return int(limit), int(period)


class ApiKeyRateThrottle(BaseThrottle):
    scope = "dev"
    setting = "DEV_API_RATE"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if key is None:
            return True
        limit, period = parse_rate(getattr(settings, self.setting))
        now = time.time()
        window = int(now // period)
        cache_key = f"ratelimit:{self.scope}:{key.pk}:{window}"
        try:
            cache.add(cache_key, 0, timeout=period + 1)
            try:
                count = cache.incr(cache_key)
            except ValueError:  # the window's key expired between add and incr
                cache.add(cache_key, 1, timeout=period + 1)
                count = 1
        except Exception:
            # An unreachable cache must not stop releases from being published.
            logger.exception("Rate limit cache unavailable; request allowed")
            return True
        self.reset_in = max(1, math.ceil((window + 1) * period - now))
        request.rate_limit = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - count)),
            "X-RateLimit-Reset": str(self.reset_in),
        }
        return count <= limit

    def wait(self) -> float:
        return float(getattr(self, "reset_in", 1))

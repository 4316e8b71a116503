"""What the provider accounts behind deployments are doing, in Redis so every process agrees:
calls in flight (for least-busy routing) and requests and tokens used this minute (quotas).

Redis being down never fails a call: the counts then read as zero and every quota as open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from orchestration.redisclients import FAST, redis_async
from orchestration.registry import DeploymentRoute

logger = logging.getLogger(__name__)

PREFIX = "sw:route"
# An in-flight counter of a process that died is not decremented; it expires instead.
IN_FLIGHT_TTL_S = 300
WINDOW_S = 60

# Admit one request under the deployment's per-minute limits: refuse when the tokens counted this
# minute reached the TPM limit, or when counting this request would pass the RPM limit.
_QUOTA_ADMIT = """
local tpm_limit = tonumber(ARGV[2])
if tpm_limit > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tpm_limit then
  return 0
end
local rpm_limit = tonumber(ARGV[1])
if rpm_limit > 0 then
  local used = redis.call('INCR', KEYS[1])
  if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  if used > rpm_limit then
    redis.call('DECR', KEYS[1])
    return 0
  end
end
return 1
"""


def _in_flight_key(key: str) -> str:
    return f"{PREFIX}:inflight:{key}"


class Accounts:
    """``clock`` (wall seconds) decides the quota minute; tests inject it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def _window_keys(self, key: str) -> tuple[str, str]:
        minute = int(self.clock() // WINDOW_S)
        return f"{PREFIX}:rpm:{key}:{minute}", f"{PREFIX}:tpm:{key}:{minute}"

    async def in_flight(self, deployments: Sequence[DeploymentRoute]) -> dict[str, int]:
        try:
            values = await redis_async(FAST).mget([_in_flight_key(d.key) for d in deployments])
        except Exception:
            logger.warning("in-flight counts unavailable; least-busy routing falls back to weights", exc_info=True)
            return {}
        return {d.key: int(value or 0) for d, value in zip(deployments, values, strict=True)}

    async def start(self, key: str) -> None:
        try:
            async with redis_async(FAST).pipeline(transaction=False) as pipe:
                pipe.incr(_in_flight_key(key))
                pipe.expire(_in_flight_key(key), IN_FLIGHT_TTL_S)
                await pipe.execute()
        except Exception:
            logger.warning("could not count a call in flight", exc_info=True)

    async def end(self, key: str) -> None:
        try:
            await redis_async(FAST).decr(_in_flight_key(key))
        except Exception:
            logger.warning("could not count a call out of flight", exc_info=True)

    async def quota_admit(self, deployment: DeploymentRoute) -> bool:
        """True when the deployment's account may take one more request this minute (counted)."""
        if deployment.rpm_limit is None and deployment.tpm_limit is None:
            return True
        rpm_key, tpm_key = self._window_keys(deployment.key)
        client = redis_async(FAST)
        try:
            admitted = await client.eval(
                _QUOTA_ADMIT, 2, rpm_key, tpm_key, deployment.rpm_limit or 0, deployment.tpm_limit or 0, WINDOW_S * 2
            )
        except Exception:
            logger.warning("quota of %s unavailable; admitting", deployment.key, exc_info=True)
            return True
        return bool(admitted)

    async def tokens_used(self, deployment: DeploymentRoute, tokens: int) -> None:
        """Count a served call's tokens against the deployment's TPM limit."""
        if deployment.tpm_limit is None or tokens <= 0:
            return
        _, tpm_key = self._window_keys(deployment.key)
        try:
            async with redis_async(FAST).pipeline(transaction=False) as pipe:
                pipe.incrby(tpm_key, tokens)
                pipe.expire(tpm_key, WINDOW_S * 2)
                await pipe.execute()
        except Exception:
            logger.warning("could not count tokens of %s", deployment.key, exc_info=True)

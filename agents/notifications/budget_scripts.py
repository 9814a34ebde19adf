"""The Lua scripts of the bot's shared budget, and its Redis keys (see ``shared_budget``).

All times are Redis's own (``TIME``), in seconds, so the workers' clocks do not matter;
every key expires once it can no longer matter, and within ``MAX_KEY_TTL`` (a day) whatever it holds.
A pause further away than the budget's ``max_pause`` (a key left by an older worker) is cut back to it.
"""

from __future__ import annotations

from agents.notifications.budget_policy import MAX_KEY_TTL

__all__ = ["BOOK", "PAUSE", "STATE", "budget_keys"]

_MAX_TTL_MS = f"{MAX_KEY_TTL * 1000:.0f}"

BOOK = """
-- Books the requests in order, each after the ones before it: KEYS = the bot's sends, the bot's pause, then
-- each request's chat and group keys; ARGV = spacing, chat interval, group window, max pause, then per request
-- its group limit (0: not a group), max wait (-1: none) and member. Returns {booked, wait} per request.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local spacing, chat_interval, group_window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_pause = tonumber(ARGV[4])
local eps = 0.000001
local function ttl(seconds)
  return math.min(math.ceil(seconds * 1000) + 1000, MAX_TTL_MS)
end
local paused = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if not (paused <= now + max_pause) then  -- too far away (or NaN): an older worker's pause, cut back
  paused = now + max_pause
  redis.call('SET', KEYS[2], string.format('%.6f', paused), 'PX', ttl(max_pause))
end
local function keep(key, seconds)
  local ms = ttl(seconds)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - spacing))
local results = {}
for r = 0, (#KEYS - 2) / 2 - 1 do
  local chat, group = KEYS[3 + 2 * r], KEYS[4 + 2 * r]
  local group_limit, max_wait, member = tonumber(ARGV[5 + 3 * r]), tonumber(ARGV[6 + 3 * r]), ARGV[7 + 3 * r]
  local at = math.max(now, paused)
  local last = redis.call('GET', chat)
  if last then at = math.max(at, tonumber(last) + chat_interval) end
  if group_limit > 0 and redis.call('LLEN', group) >= group_limit then
    at = math.max(at, tonumber(redis.call('LINDEX', group, -group_limit)) + group_window)
  end
  local booked = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%.6f', at - spacing + eps), '+inf', 'WITHSCORES')
  for i = 2, #booked, 2 do
    local b = tonumber(booked[i])
    if b < at + spacing - eps then at = b + spacing else break end
  end
  local wait = at - now
  if max_wait >= 0 and wait > max_wait then
    results[#results + 1] = 0
  else
    local stamp = string.format('%.6f', at)
    redis.call('ZADD', KEYS[1], stamp, member)
    keep(KEYS[1], wait + spacing)
    redis.call('SET', chat, stamp, 'PX', ttl(wait + chat_interval))
    if group_limit > 0 then
      redis.call('RPUSH', group, stamp)
      redis.call('LTRIM', group, -group_limit, -1)
      keep(group, wait + group_window)
    end
    results[#results + 1] = 1
  end
  results[#results + 1] = string.format('%.6f', wait)
end
return results
""".replace("MAX_TTL_MS", _MAX_TTL_MS)

PAUSE = """
-- KEYS = the bot's pause; ARGV = seconds, the budget's max pause. Pauses only lengthen, and end within max pause
-- (and a day) from now: a pause set further away (an older worker's) is cut back.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = math.min(tonumber(ARGV[2]), MAX_TTL_S)
local seconds = tonumber(ARGV[1]) or 0
if not (seconds >= 0) then seconds = 0 end
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local resume_at = stored
if not (resume_at <= now + limit) then resume_at = now + limit end
resume_at = math.max(resume_at, now + math.min(seconds, limit))
if resume_at ~= stored then
  redis.call('SET', KEYS[1], string.format('%.6f', resume_at), 'PX', math.ceil((resume_at - now) * 1000) + 1000)
end
return string.format('%.6f', resume_at - now)
""".replace("MAX_TTL_S", f"{MAX_KEY_TTL - 1:.0f}")

STATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0') - now
return {redis.call('ZCOUNT', KEYS[1], string.format('(%.6f', now), '+inf'), string.format('%.6f', math.max(0, paused))}
"""


def budget_keys(bot_id: str, chat_id: int) -> tuple[str, str, str, str]:
    """Redis keys of one booking: the bot's sends, the chat's last send, the group's last sends, the bot's pause."""
    bot = f"lunch:telegram:{bot_id}"
    return f"{bot}:sends", f"{bot}:chat:{chat_id}", f"{bot}:group:{chat_id}", f"{bot}:paused-until"

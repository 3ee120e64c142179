-- write_status: a user's status (status_cache.py), written unless a newer one is cached (its
-- click count only grows). Included by status_cache.lua and complete.lua.
-- KEYS: none of its own (it is given the user's status key). ARGV: none.
local function write_status(key, clicks, balance, last, ttl)
  local current = tonumber(redis.call('HGET', key, 'clicks') or '-1')
  if tonumber(clicks) >= current then
    redis.call('HSET', key, 'clicks', clicks, 'balance', balance, 'last', last)
    redis.call('EXPIRE', key, ttl)
    return 1
  end
  return 0
end

-- Counts one attempt on every counter, unless one of them is at its limit.
-- KEYS: the counters.
-- ARGV: 1 max attempts, 2 window in ms.
-- Returns {0, 0} when the attempt is counted, else {blocking key's index, ms until it frees}.
local limit = tonumber(ARGV[1])
local blocked, wait = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= limit then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[2])
      ttl = tonumber(ARGV[2])
    end
    if ttl > wait then
      blocked, wait = i, ttl
    end
  end
end
if blocked > 0 then
  return {blocked, wait}
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return {0, 0}

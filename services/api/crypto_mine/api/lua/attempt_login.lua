-- Checks and counts one login attempt on its three counters together (attempt_limits.py).
-- KEYS: 1 client counter, 2 (username, client) counter, 3 username hash {n = failures, t = ms}.
-- ARGV: 1 client limit, 2 pair limit, 3 failures before delays, 4 window ms, 5 trusted device
--       (1/0), 6 first delay ms, 7 longest delay ms.
-- Returns {0, 0} when the attempt is counted, else {blocking key's index, ms until it frees}.
-- include: clock.lua
local window = tonumber(ARGV[4])
local blocked, wait = 0, 0
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      ttl = window
    end
    if ttl > wait then blocked, wait = i, ttl end
  end
end
local failures = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
local free_after = tonumber(ARGV[3])
if ARGV[5] == '0' and failures >= free_after then
  local delay = math.min(tonumber(ARGV[7]), tonumber(ARGV[6]) * 2 ^ (failures - free_after))
  local ready = tonumber(redis.call('HGET', KEYS[3], 't') or '0') + delay
  if ready - now_ms > wait then blocked, wait = 3, ready - now_ms end
end
if blocked > 0 then
  return {blocked, math.ceil(wait)}
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('PEXPIRE', KEYS[i], window)
  end
end
redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('HSET', KEYS[3], 't', now_ms)
redis.call('PEXPIRE', KEYS[3], window)
return {0, 0}

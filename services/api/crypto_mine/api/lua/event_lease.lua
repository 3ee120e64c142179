-- One open event stream's lease among the user's (at most `limit` across all api replicas).
-- KEYS: 1 the user's leases, 2 the token's sign-out mark.
-- ARGV: 1 connection, 2 lease ms, 3 limit (0: renew, no limit).
-- Returns 1 when the connection holds a lease, 0 when the limit is reached, -1 when the token
-- was signed out.
-- include: clock.lua
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local limit = tonumber(ARGV[3])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1

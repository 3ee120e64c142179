-- One clock for every api replica: the Redis server's, read once per script: `now_ms`.
-- KEYS: none. ARGV: none.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

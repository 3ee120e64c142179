-- The general limit of the /api/* routes: each request takes one token of its client IP's
-- bucket (the bucket functions of limits.lua); one call decides a batch of requests, in order.
-- KEYS: per request, its IP's bucket (the same key may come several times).
-- ARGV: 1 tokens per second, 2 burst.
-- Returns per request {1 taken / 0 limited, tokens left, ms until full, ms to wait if limited}.
-- include: limits.lua

local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local results = {}
for i, key in ipairs(KEYS) do
  local bs = {bucket(key, rate, burst)}
  local worst, wait = check(bs, 1)
  if worst == 0 then debit(bs, 1) end
  results[i] = {worst == 0 and 1 or 0, math.floor(bs[1].tokens), full_in_ms(bs[1]), wait}
end
save_buckets()
return results

-- Record the outcome of an applied (or failed) batch, once: click records, users' cached
-- status, and the queue depth (decremented only by the first run that removes the job).
--
-- KEYS: 1 queue depth, 2 queue jobs, then completed click records, failed click records,
--       user status keys.
-- ARGV: 1 job id, 2 completed count (c), 3 failed count (f), 4 user count (u),
--       5 status ttl, then 4 per completed click (reward, balance, applied ms, duplicate),
--       1 per failed click (error code), 3 per user (clicks, balance, last click ms).

local job, c, f, u, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

local carried = redis.call('HGET', KEYS[2], job)
if carried then
  redis.call('HDEL', KEYS[2], job)
  redis.call('DECRBY', KEYS[1], carried)
end

-- A record that expired stays gone: writing it again would leave it without a TTL.
for i = 1, c do
  local key, a = KEYS[2 + i], 6 + 4 * (i - 1)
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 's', 'completed', 'r', ARGV[a], 'b', ARGV[a + 1], 'a', ARGV[a + 2],
      'd', ARGV[a + 3])
  end
end
for i = 1, f do
  local key = KEYS[2 + c + i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 's', 'failed', 'e', ARGV[5 + 4 * c + i])
  end
end
for i = 1, u do
  local a = 6 + 4 * c + f + 3 * (i - 1)
  write_status(KEYS[2 + c + f + i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ttl)
end
return carried and tonumber(carried) or 0

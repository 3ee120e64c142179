-- The queue reporter's lease (queue_reporter.py): taken if free, or kept if ours.
-- KEYS: 1 the lease.
-- ARGV: 1 the holder's identity, 2 lease seconds.
-- Returns 1 when we hold it, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0

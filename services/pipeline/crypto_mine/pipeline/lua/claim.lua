-- Closes the job to new clicks (admission adds to the open job only), then reads its clicks.
-- KEYS: 1 open job, 2 the job's click list.
-- ARGV: 1 job id.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LRANGE', KEYS[2], 0, -1)

-- Takes a job nobody dequeued off the RQ queue (the api's inline mode, after running it).
-- KEYS: 1 RQ queue, 2 RQ job hash.
-- ARGV: 1 job id.
-- Returns 1 when the job was still queued (and is gone now), else 0.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0

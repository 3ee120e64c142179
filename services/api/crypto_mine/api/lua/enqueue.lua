-- Enqueue: one RQ job carries every click accepted by this call. Its hash is written from the
-- fields RQ's own Job.to_dict() produced, with `data` holding only the accepted clicks; then
-- the job id is pushed onto the RQ queue and the depth counter grows by its clicks.

local function enqueue(job_id, clicks_json, clicks, fields, prefix, suffix)
  redis.call('HSET', KEYS[5], unpack(fields))
  redis.call('HSET', KEYS[5], 'data', prefix .. table.concat(clicks_json, ',') .. suffix)
  redis.call('RPUSH', KEYS[4], job_id)
  redis.call('SADD', KEYS[6], KEYS[4])
  redis.call('INCRBY', KEYS[2], clicks)
  redis.call('HSET', KEYS[3], job_id, clicks)
end

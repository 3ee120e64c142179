-- Enqueue: accepted clicks join the job still waiting at the tail of the RQ queue (the "open"
-- job) while it has room, else a new job. Under load, jobs therefore grow while workers are
-- busy; when workers are idle, each call's clicks leave at once. A job's clicks are a Redis list
-- beside its RQ hash; a worker that starts the job closes it first, so a job never gains clicks
-- after a run began. The depth counter grows by the clicks, and the queue-jobs hash remembers
-- how many each job carries (the worker's outcome script takes them off once).
--
-- KEYS: 2 queue depth, 3 queue jobs, 4 RQ queue, 5 new job's RQ hash, 6 RQ queues set,
--       7 open job, 8 new job's click list.
-- ARGV: 13 prefix of click lists.

local function target_job(new_job, candidate_clicks, max_clicks)
  local open = redis.call('GET', KEYS[7])
  if open and redis.call('LINDEX', KEYS[4], -1) == open then
    local carried = tonumber(redis.call('HGET', KEYS[3], open) or '0')
    if carried > 0 and carried + candidate_clicks <= max_clicks then
      return open
    end
  end
  return new_job
end

local function enqueue(job, new_job, clicks_json, clicks, fields)
  if job == new_job then
    redis.call('HSET', KEYS[5], unpack(fields))
    redis.call('RPUSH', KEYS[8], unpack(clicks_json))
    redis.call('RPUSH', KEYS[4], job)
    redis.call('SADD', KEYS[6], KEYS[4])
    redis.call('HSET', KEYS[3], job, clicks)
    redis.call('SET', KEYS[7], job)
  else
    redis.call('RPUSH', ARGV[13] .. job, unpack(clicks_json))
    redis.call('HINCRBY', KEYS[3], job, clicks)
  end
  redis.call('INCRBY', KEYS[2], clicks)
end

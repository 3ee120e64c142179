-- Idempotency: one record per (user, key) holding the click's fingerprint and its outcome.
-- A repeat with the same fingerprint replays the record; a different body is a mismatch.

local function known(record_key)
  return redis.call('HGET', record_key, 'f')
end

local function remember(record_key, fingerprint, clicks, job_id, ttl)
  redis.call('HSET', record_key, 's', 'queued', 'f', fingerprint, 'n', clicks, 'j', job_id,
    't', now_ms)
  redis.call('EXPIRE', record_key, ttl)
end

local function replay(record_key)
  return redis.call('HGETALL', record_key)
end

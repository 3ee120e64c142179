-- Idempotency: one record per (user, key), a hash with the click's state, clicks, acceptance
-- time and outcome (crypto_mine.pipeline.records). A repeat with the same clicks replays the
-- record; other clicks are a reuse of the key (a mismatch). While the click waits its record
-- lives `ttl` seconds; the worker keeps a completed one for the window. Beyond the window the
-- api found the record in MongoDB and passes it as `stored`: it answers the same way, and comes
-- back into Redis for the window, so that the repeats and status reads that follow stay here.
-- KEYS: none of its own (each function is given its click record's key). ARGV: none.

local function known(record_key)
  return redis.call('HGET', record_key, 'n')
end

local function remember(record_key, clicks, job_id, accepted_ms, ttl)
  redis.call('HSET', record_key, 's', 'queued', 'n', clicks, 't', accepted_ms, 'j', job_id)
  redis.call('EXPIRE', record_key, ttl)
end

local function replay(record_key)
  return redis.call('HGETALL', record_key)
end

-- `stored`: the record's field/value pairs, separated by spaces. Returns them and its clicks.
local function restore(record_key, stored, window)
  local fields, clicks = {}, nil
  for item in string.gmatch(stored, '%S+') do
    if fields[#fields] == 'n' and #fields % 2 == 1 then clicks = tonumber(item) end
    fields[#fields + 1] = item
  end
  redis.call('HSET', record_key, unpack(fields))
  redis.call('EXPIRE', record_key, window)
  return fields, clicks
end

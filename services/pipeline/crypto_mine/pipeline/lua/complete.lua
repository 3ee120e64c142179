-- Record the outcome of an applied (or failed) batch, once: click records, users' cached
-- status, the queue depth (decremented only by the first run that removes the job), the
-- users' event streams (an event only when a click record changes state, so a repeated run
-- of the same batch emits nothing new; at most maxlen events, none older than the stream ttl),
-- and the job's click list, which is no longer needed.
--
-- A completed record loses its job id (and the fingerprint of older versions) and lives for the
-- window from now: MongoDB answers for the click after it. A failed one keeps its TTL.
--
-- KEYS: 1 queue depth, 2 queue jobs, 3 the job's click list, then completed click records,
--       failed click records, user status keys, event streams.
-- ARGV: 1 job id, 2 completed count (c), 3 failed count (f), 4 user count (u),
--       5 status ttl, 6 stream maxlen, 7 stream ttl, 8 window (s),
--       then 6 per completed click (key, reward, balance, applied ms, duplicate, stream),
--       3 per failed click (key, error code, stream), 4 per user (clicks, balance,
--       last click ms, stream); "stream" is the 1-based index of the user's event stream.
-- include: write_status.lua

local job = ARGV[1]
local c, f, u = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, maxlen, stream_ttl, window = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local streams = 3 + c + f + u
local touched = {}

local function emit(stream, ...)
  redis.call('XADD', KEYS[streams + stream], 'MAXLEN', '~', maxlen, '*', ...)
  touched[stream] = true
end
-- Events older than stream_ttl are no longer needed to resume (a reconnect within it resumes
-- without a gap): each stream's balance event, its last of the batch, trims them, so a user
-- who clicks on and on does not keep maxlen events for ever.
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local oldest = string.format('%.0f', now_ms - stream_ttl * 1000)

local carried = redis.call('HGET', KEYS[2], job)
if carried then
  redis.call('HDEL', KEYS[2], job)
  redis.call('DECRBY', KEYS[1], carried)
end
redis.call('DEL', KEYS[3])

-- The first completion stands: a repeated run changes nothing. A record that expired stays
-- gone (MongoDB answers for it), so no event is emitted twice.
for i = 1, c do
  local key, a = KEYS[3 + i], 9 + 6 * (i - 1)
  local state, n, t = unpack(redis.call('HMGET', key, 's', 'n', 't'))
  if state and state ~= 'completed' then
    redis.call('HSET', key, 's', 'completed', 'r', ARGV[a + 1], 'b', ARGV[a + 2],
      'a', ARGV[a + 3])
    if ARGV[a + 4] == '1' then redis.call('HSET', key, 'd', '1') end
    redis.call('HDEL', key, 'j', 'f')
    redis.call('EXPIRE', key, window)
    emit(tonumber(ARGV[a + 5]), 'ev', 'click', 'k', ARGV[a], 's', 'completed', 'n', n or '0',
      't', t or '0', 'r', ARGV[a + 1], 'b', ARGV[a + 2], 'a', ARGV[a + 3], 'd', ARGV[a + 4])
  end
end
for i = 1, f do
  local key, a = KEYS[3 + c + i], 9 + 6 * c + 3 * (i - 1)
  local state, n, t = unpack(redis.call('HMGET', key, 's', 'n', 't'))
  if state then
    redis.call('HSET', key, 's', 'failed', 'e', ARGV[a + 1])
    if state ~= 'failed' then
      emit(tonumber(ARGV[a + 2]), 'ev', 'click', 'k', ARGV[a], 's', 'failed', 'n', n or '0',
        't', t or '0', 'e', ARGV[a + 1])
    end
  end
end
for i = 1, u do
  local a = 9 + 6 * c + 3 * f + 4 * (i - 1)
  write_status(KEYS[3 + c + f + i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ttl)
  local stream = tonumber(ARGV[a + 3])
  if touched[stream] then
    redis.call('XADD', KEYS[streams + stream], 'MINID', '~', oldest, '*', 'ev', 'balance',
      'clicks', ARGV[a], 'balance', ARGV[a + 1], 'last', ARGV[a + 2])
  end
end
-- Each stream written lives on for stream_ttl from now (one EXPIRE per stream, not per event).
for stream = 1, #KEYS - streams do
  if touched[stream] then redis.call('EXPIRE', KEYS[streams + stream], stream_ttl) end
end
return carried and tonumber(carried) or 0

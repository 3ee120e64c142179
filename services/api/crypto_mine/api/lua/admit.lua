-- Admission of a batch of clicks, atomically: limits -> idempotency -> backpressure -> enqueue.
--
-- KEYS: 1 global bucket, 2 queue depth, 3 queue jobs, 4 RQ queue, 5 new job's RQ hash,
--       6 RQ queues set, 7 open job, 8 new job's click list,
--       then per click: user bucket, ip bucket, click record.
-- ARGV: 1..6 global/user/ip rate and burst, 7 max depth, 8 record ttl (s), 9 new job id,
--       10 most clicks per job, 11 candidate clicks (sum of this call's), 12 number of job
--       hash fields (n), 13 prefix of click lists, 14 window (s), 15 accepted at (ms),
--       16..15+2n field/value pairs, then per click: clicks, click json, stored record
--       (from MongoDB: its field/value pairs separated by spaces; "" when none was found).
-- Returns {depth, job id or false, per click {outcome, policy, remaining, reset ms, wait ms, record...}}.
--
-- Its parts, in this order: limits (its clock first: the buckets refill to now), then the
-- idempotency records, backpressure (which reads the depth once, before any click) and the
-- enqueue step; each defines the local functions this script's body calls below.
-- include: limits.lua
-- include: idempotency.lua
-- include: backpressure.lua
-- include: enqueue.lua

local ACCEPTED, REPLAYED, MISMATCH, LIMITED, FULL = 1, 2, 3, 4, 5

local max_depth = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local new_job = ARGV[9]
local nfields = tonumber(ARGV[12])
local window = tonumber(ARGV[14])
local accepted_ms = ARGV[15]
local first = 16 + 2 * nfields
local count = (#KEYS - 8) / 3
local job_id = target_job(new_job, tonumber(ARGV[11]), tonumber(ARGV[10]))

local results = {}
local accepted_json = {}
local accepted = 0

for i = 0, count - 1 do
  local user_key, ip_key, record_key = KEYS[9 + 3 * i], KEYS[10 + 3 * i], KEYS[11 + 3 * i]
  local clicks = tonumber(ARGV[first + 3 * i])
  local stored = ARGV[first + 3 * i + 2]
  local bs = click_buckets(user_key, ip_key)
  local worst, wait = check(bs, clicks)
  if worst > 0 then
    local b = bs[worst]
    results[#results + 1] = {LIMITED, worst, math.floor(b.tokens), full_in_ms(b), wait}
  else
    local seen = known(record_key)
    local outcome, record = nil, nil
    if seen then
      if tonumber(seen) == clicks then outcome, record = REPLAYED, replay(record_key)
      else outcome = MISMATCH end
    elseif stored ~= '' then
      local fields, stored_clicks = restore(record_key, stored, window)
      if stored_clicks == clicks then outcome, record = REPLAYED, fields
      else outcome = MISMATCH end
    elseif room_for(clicks, max_depth) then
      outcome = ACCEPTED
      reserve(clicks)
      remember(record_key, clicks, job_id, accepted_ms, ttl)
      accepted_json[#accepted_json + 1] = ARGV[first + 3 * i + 1]
      accepted = accepted + clicks
    else
      outcome = FULL
    end
    if outcome == FULL then
      results[#results + 1] = {FULL, 0, 0, 0, 0}
    else
      debit(bs, clicks)
      local t = tightest(bs)
      local entry = {outcome, t, math.floor(bs[t].tokens), full_in_ms(bs[t]), 0}
      if record then entry[6] = record end
      results[#results + 1] = entry
    end
  end
end

save_buckets()
if accepted > 0 then
  local fields = {}
  for f = 16, 15 + 2 * nfields do fields[#fields + 1] = ARGV[f] end
  enqueue(job_id, new_job, accepted_json, accepted, fields)
else
  job_id = false
end
return {depth, job_id, results}

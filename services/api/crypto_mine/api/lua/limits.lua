-- Rate limits: global, per-user and per-IP token buckets, debited together or not at all.
-- A bucket is a hash {t = tokens, ts = last refill in ms}; an idle bucket expires once full.
-- KEYS: 1 global bucket (read by click_buckets; bucket() takes any key).
-- ARGV: 1..6 global/user/ip rate and burst (read by click_buckets).
-- include: clock.lua

local buckets = {}

local function bucket(key, rate, burst)
  local b = buckets[key]
  if b == nil then
    local raw = redis.call('HMGET', key, 't', 'ts')
    local tokens = tonumber(raw[1])
    local ts = tonumber(raw[2])
    if tokens == nil or ts == nil then
      tokens = burst
    else
      tokens = math.min(burst, tokens + math.max(0, now_ms - ts) * rate / 1000)
    end
    b = {key = key, tokens = tokens, rate = rate, burst = burst, dirty = false}
    buckets[key] = b
  end
  return b
end

-- The three buckets of one click, in policy order: global, user, ip.
local function click_buckets(user_key, ip_key)
  return {
    bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])),
    bucket(user_key, tonumber(ARGV[3]), tonumber(ARGV[4])),
    bucket(ip_key, tonumber(ARGV[5]), tonumber(ARGV[6])),
  }
end

-- 0 when every bucket holds `cost` tokens; else the index of the bucket with the longest wait
-- and that wait in ms.
local function check(bs, cost)
  local worst, wait = 0, 0
  for i, b in ipairs(bs) do
    if b.tokens < cost then
      local ms = math.ceil((cost - b.tokens) * 1000 / b.rate)
      if ms > wait then worst, wait = i, ms end
    end
  end
  return worst, wait
end

local function debit(bs, cost)
  for _, b in ipairs(bs) do
    b.tokens = b.tokens - cost
    b.dirty = true
  end
end

-- The bucket closest to empty (the binding one for the RateLimit header).
local function tightest(bs)
  local best, share = 1, 2
  for i, b in ipairs(bs) do
    local s = b.tokens / b.burst
    if s < share then best, share = i, s end
  end
  return best
end

local function full_in_ms(b)
  return math.ceil((b.burst - b.tokens) * 1000 / b.rate)
end

local function save_buckets()
  for key, b in pairs(buckets) do
    if b.dirty then
      redis.call('HSET', key, 't', tostring(b.tokens), 'ts', now_ms)
      redis.call('PEXPIRE', key, full_in_ms(b) + 1000)
    end
  end
end

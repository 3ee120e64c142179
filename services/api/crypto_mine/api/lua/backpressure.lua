-- Backpressure: the queue holds at most `max_depth` clicks (accepted, not yet applied).
-- KEYS: 2 queue depth. ARGV: none.

local depth = tonumber(redis.call('GET', KEYS[2]) or '0')

local function room_for(clicks, max_depth)
  return depth + clicks <= max_depth
end

local function reserve(clicks)
  depth = depth + clicks
end

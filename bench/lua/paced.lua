
-- Pacing: each thread sends at RATE_PER_THREAD requests/s on a fixed schedule (open model while
-- connections are free; a late request is sent at once, so the schedule catches up).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *now);
]]
local clock = ffi.new("bench_timespec")
local next_at = nil

local function now_ms()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function delay()
  local now = now_ms()
  local interval = 1000 / rate
  if next_at == nil then next_at = now end
  local slot = next_at
  next_at = next_at + interval
  if slot <= now then return 0 end
  return slot - now
end

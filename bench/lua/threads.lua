-- Every thread gets an id (0, 1, ...) before init(); summary.lua reads their counts at the end.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

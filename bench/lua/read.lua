-- GET the requests of a file in turn, one per line: PATH<TAB>TOKEN (a bearer token).
-- wrk ... -s read.lua URL -- REQUESTS_FILE
-- Each thread starts at its own place in the list; answers are counted by status.

local requests, at = {}, 0
ok, answered, statuses = 0, 0, {}

function init(args)
  for line in io.lines(args[1]) do
    local path, token = line:match("^([^\t]+)\t(.+)$")
    if path then
      requests[#requests + 1] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
    end
  end
  at = id * 7919
end

function request()
  at = at + 1
  return requests[(at % #requests) + 1]
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then ok = ok + 1 end
end

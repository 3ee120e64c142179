-- POST /api/mining/click with a bearer token and a unique Idempotency-Key per request.
-- wrk ... -s click.lua URL -- TOKENS_FILE KEY_PREFIX [RATE_PER_THREAD] [CLICKS THREADS DONE_DIR]
-- Keys are PREFIX-THREAD-N: unique across threads (ids from threads.lua) and runs (prefix).
-- RATE_PER_THREAD > 0 paces requests (delay()). CLICKS > 0 sends exactly that many clicks in
-- all (each of the THREADS its share), then only GET /bench-idle (404, no click) until the
-- clicks' answers are in; then the thread stops and writes DONE_DIR/PREFIX-THREAD.done.

local tokens, prefix, sent = {}, "k", 0
local body = '{"clicks":1}'
local idle = nil
local primed = false
rate, quota, done_dir = 0, 0, ""
ok, answered, statuses = 0, 0, {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  prefix = args[2] .. "-" .. id
  rate = tonumber(args[3] or "0")
  local clicks, count = tonumber(args[4] or "0"), tonumber(args[5] or "1")
  quota = math.floor(clicks / count) + ((id < clicks % count) and 1 or 0)
  done_dir = args[6] or ""
  idle = wrk.format("GET", "/bench-idle")
end

function request()
  -- wrk calls request() once to inspect it before the run (thread 0 only, in 4.1): in a
  -- counted run each thread's first call yields a no-click request, so no click is lost.
  if quota > 0 and not primed then
    primed = true
    return idle
  end
  if quota > 0 and sent >= quota then return idle end
  sent = sent + 1
  local headers = {
    ["Authorization"] = tokens[(sent % #tokens) + 1],
    ["Idempotency-Key"] = prefix .. "-" .. sent,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", nil, headers, body)
end

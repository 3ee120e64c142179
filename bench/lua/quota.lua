
-- Quota: count answers by status; stop this thread once its share of the clicks got 2xx.
function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
    if ok == quota then
      local marker = io.open(done_dir .. "/" .. prefix .. ".done", "w")
      marker:write(tostring(ok))
      marker:close()
      wrk.thread:stop()
    end
  end
end

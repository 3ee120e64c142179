
-- One JSON line the caller parses: totals, errors, latency percentiles (microseconds).
function done(summary, latency, requests)
  local ok_total, answered_total, by_status, codes = 0, 0, {}, {}
  for _, thread in ipairs(threads) do
    ok_total = ok_total + (thread:get("ok") or 0)
    answered_total = answered_total + (thread:get("answered") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  for status, count in pairs(by_status) do
    codes[#codes + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d},' ..
    '"counted":{"ok":%d,"answered":%d,"statuses":{%s}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9),
    ok_total, answered_total, table.concat(codes, ",")))
end

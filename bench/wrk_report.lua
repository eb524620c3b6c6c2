-- wrk script: POST a JSON body (env WRK_BODY) and print latency percentiles as JSON.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
-- A body too big for an environment variable (a 10k-row batch) comes as a file.
local body_file = os.getenv("WRK_BODY_FILE")
if body_file then
  local handle = assert(io.open(body_file, "rb"))
  wrk.body = handle:read("*a")
  handle:close()
end
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/json"

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p95_ms": %.3f, ' ..
    '"p99_ms": %.3f, "errors": %d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end

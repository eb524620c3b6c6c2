-- wrk script: GET a fixed list of tile paths in rotation and print the results as JSON.
-- WRK_PATHS names a file with one request path (with query) per line; each wrk thread
-- starts at its own offset of the list so threads do not ask for the same tile at once.
-- With WRK_COUNT_CACHE set, the X-Tile-Cache response header is tallied (hit/miss/none);
-- that costs Lua work per response, so it is only set on warm-up and check runs.
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do
  if #line > 0 then paths[#paths + 1] = line end
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 1
hits, misses, uncached = 0, 0, 0

function init(args)
  counter = 1 + (id * 37) % #paths
end

function request()
  local path = paths[counter]
  counter = counter % #paths + 1
  return wrk.format("GET", path)
end

if os.getenv("WRK_COUNT_CACHE") then
  function response(status, headers, body)
    local state = headers["X-Tile-Cache"] or headers["x-tile-cache"]
    if state == "hit" then
      hits = hits + 1
    elseif state == "miss" then
      misses = misses + 1
    else
      uncached = uncached + 1
    end
  end
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local h, m, u = 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + (thread:get("hits") or 0)
    m = m + (thread:get("misses") or 0)
    u = u + (thread:get("uncached") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p95_ms": %.3f, ' ..
    '"p99_ms": %.3f, "errors": %d, "cache_hits": %d, "cache_misses": %d, "cache_none": %d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout, h, m, u))
end

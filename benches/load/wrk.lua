-- wrk script of benches/load/run.sh. Configured by the environment:
--   WRK_PATH         request path (default "/healthz")
--   WRK_TOKEN        one bearer token sent on every request (static request: no Lua per request)
--   WRK_TOKENS_FILE  one token a line: requests rotate through them (each thread starts at its
--                    own offset; all requests are pre-formatted in init)
--   WRK_STOP_AFTER   if > 0, each thread stops after this many responses (a bounded storm)
-- done() prints one machine-readable line starting with "WRK_RESULT".

local path = os.getenv("WRK_PATH") or "/healthz"
local token = os.getenv("WRK_TOKEN")
local tokens_file = os.getenv("WRK_TOKENS_FILE")
local stop_after = tonumber(os.getenv("WRK_STOP_AFTER") or "0") or 0

wrk.method = "GET"
wrk.path = path
if token and #token > 0 then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

if tokens_file and #tokens_file > 0 then
  local reqs = {}
  local n = 0
  local i = 0
  function init(args)
    local toks = {}
    for line in io.lines(tokens_file) do
      if #line > 0 then toks[#toks + 1] = line end
    end
    n = #toks
    if n == 0 then error("no token in " .. tokens_file) end
    for k = 1, n do
      reqs[k] = wrk.format("GET", path, { Authorization = "Bearer " .. toks[k] })
    end
    -- Threads start spread over the list (thread_id is set by setup()).
    i = ((thread_id or 0) * 7919) % n
  end
  function request()
    i = i % n + 1
    return reqs[i]
  end
end

if stop_after > 0 then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen >= stop_after then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f status_err=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end

-- wrk script for publish_throughput.sh: POST /api/publish with a small JSON body, the
-- channel rotating over NS:0 .. NS:(CHANNELS-1) (environment NS [bench], CHANNELS [100],
-- API_KEY). Every reply is checked: non-200 and 200 replies whose body is an API error
-- ({"error":...}) are counted apart; done() sums the per-thread counters and prints one
-- RESULT line for the script to parse (latencies in ms).
local threads = {}
local counter = 1

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    ns = os.getenv("NS") or "bench"
    nchan = tonumber(os.getenv("CHANNELS") or "100")
    key = os.getenv("API_KEY") or ""
    seq = tid * 7919
    bad_status = 0
    api_errors = 0
    ok = 0
    headers = { ["X-API-Key"] = key, ["Content-Type"] = "application/json" }
end

function request()
    seq = seq + 1
    local body = string.format('{"channel":"%s:%d","data":{"seq":%d,"text":"hello"}}',
        ns, seq % nchan, seq)
    return wrk.format("POST", "/api/publish", headers, body)
end

function response(status, hdrs, body)
    if status ~= 200 then
        bad_status = bad_status + 1
    elseif string.find(body, '"error"', 1, true) then
        api_errors = api_errors + 1
    else
        ok = ok + 1
    end
end

function done(summary, latency, requests)
    local bs, ae, okc = 0, 0, 0
    for _, t in ipairs(threads) do
        bs = bs + t:get("bad_status")
        ae = ae + t:get("api_errors")
        okc = okc + t:get("ok")
    end
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
        "ok=%d bad_status=%d api_errors=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        latency.max / 1000, okc, bs, ae, e.connect, e.read, e.write, e.timeout))
end

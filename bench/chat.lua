-- wrk script: POST a small chat completion and print the results as one JSON line.
--
--   wrk -t1 -c64 -d10s -s bench/chat.lua http://127.0.0.1:18080/v1/chat/completions
--
-- BENCH_BODY overrides the request body; BENCH_HEADERS adds headers, one "Name: value" a line
-- (bench/streams.py sends anthropic-version this way). The last line of output starts with "BENCH_JSON " and
-- holds requests, duration, error counts and latency percentiles in microseconds.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
    or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
for name, value in (os.getenv("BENCH_HEADERS") or ""):gmatch("([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end

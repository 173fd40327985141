-- Shared by the wrk scripts: numbers each thread, counts the answers each
-- script calls good, and prints one JSON line that tests/bench/bench.py reads.
-- Every script sets `good_status` (the status of a successful answer).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

ok, bad, exhausted = 0, 0, 0

function count(status)
  if status == good_status then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("unexpected status " .. status .. "\n")
    end
  end
end

-- Lines number `id`, `id + n`, `id + 2n`… of a file: each thread's share.
function share_of(path, id, n)
  local lines, i = {}, 0
  for line in io.lines(path) do
    if (i % n) + 1 == id and line ~= "" then
      table.insert(lines, line)
    end
    i = i + 1
  end
  return lines
end

function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function done(summary, latency, requests)
  local good, failed, dry = 0, 0, 0
  for _, t in ipairs(threads) do
    good = good + t:get("ok")
    failed = failed + t:get("bad")
    dry = dry + t:get("exhausted")
  end
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"ok":%d,"failed":%d,"exhausted":%d,' ..
    '"socket_errors":%d,"p50_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, good, failed, dry,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000))
end

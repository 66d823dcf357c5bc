-- wrk script of the REST benchmark (bench/rest_bench.py).
--
-- GET runs use it only for `done`, which prints the figures as one JSON line the benchmark
-- parses. With MITRA_WRK_SEND set, every request is a POST of a chat message whose
-- client_msg_id is fresh (thread number and a counter), so no request is a de-duplicated retry.

local send = os.getenv("MITRA_WRK_SEND") ~= nil
local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   counter = 0
   wrk.headers["Content-Type"] = "application/json"
end

if send then
   function request()
      counter = counter + 1
      local body = string.format(
         '{"client_msg_id":"wrk-%d-%d-%d","body":"premium reminder %d"}',
         os.time(), thread_number, counter, counter)
      return wrk.format("POST", nil, nil, body)
   end
end

function done(summary, latency, requests)
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, errors, summary.errors.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

-- wrk script for orderd's peak-rate scenarios (and for the floor, driven the same way).
--
-- ODB_MODE   unique  | a new order on every request (the SKU carries salt, thread and counter)
--            dup     | ODB_DUP_KEYS orders per thread, over and over (replays from the hot cache)
--            invalid | an order with two bad fields (400)
--            get     | GET /orders/{id}, cycling through the ids in ODB_IDS (one per line)
-- ODB_SALT   digits making this run's unique orders differ from every other run's
--
-- done() prints one line starting with "ODB_RESULT " holding JSON: requests, seconds, rate,
-- latency percentiles in ms, and the status codes counted by response() in every thread.

local mode = os.getenv("ODB_MODE") or "unique"
local salt = os.getenv("ODB_SALT") or tostring(os.time() % 100000000)
local dup_keys = tonumber(os.getenv("ODB_DUP_KEYS") or "100")
local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

-- Per thread (each has its own Lua state): a request counter and the status counts.
counter = 0
c200, c201, c400, c503, cother = 0, 0, 0, 0, 0
local ids = {}

local function load_ids(path)
   for line in io.lines(path) do
      if #line == 26 then
         ids[#ids + 1] = line
      end
   end
   assert(#ids > 0, "no order ids in " .. path)
end

function init(args)
   if mode == "get" then
      load_ids(assert(os.getenv("ODB_IDS"), "ODB_IDS is required in get mode"))
   else
      wrk.method = "POST"
      wrk.headers["Content-Type"] = "application/json"
   end
end

local function order_body(k)
   return string.format('{"customer_id":"CUST-%06d","currency":"EUR","items":[{"sku":"W%s-%d-%d",'
      .. '"quantity":2,"unit_price_cents":1999}]}', k % 1000000, salt, tid, k)
end

local invalid_body = '{"customer_id":"BAD-1","currency":"EUR","items":[{"sku":"SKU-1001",'
   .. '"quantity":0,"unit_price_cents":1999}]}'

function request()
   counter = counter + 1
   if mode == "get" then
      return wrk.format("GET", "/orders/" .. ids[(counter % #ids) + 1])
   elseif mode == "invalid" then
      return wrk.format(nil, "/orders", nil, invalid_body)
   elseif mode == "dup" then
      return wrk.format(nil, "/orders", nil, order_body(counter % dup_keys))
   end
   return wrk.format(nil, "/orders", nil, order_body(counter))
end

function response(status, headers, body)
   if status == 200 then c200 = c200 + 1
   elseif status == 201 then c201 = c201 + 1
   elseif status == 400 then c400 = c400 + 1
   elseif status == 503 then c503 = c503 + 1
   else cother = cother + 1 end
end

local function sum(name)
   local n = 0
   for _, t in ipairs(threads) do
      n = n + t:get(name)
   end
   return n
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   local ms = function(us) return us / 1000.0 end
   io.write(string.format('ODB_RESULT {"requests":%d,"duration_s":%.3f,"achieved_rps":%.1f,'
      .. '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,'
      .. '"status":{"200":%d,"201":%d,"400":%d,"503":%d,"other":%d},'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
      summary.requests, secs, summary.requests / secs,
      ms(latency:percentile(50)), ms(latency:percentile(95)), ms(latency:percentile(99)),
      ms(latency.max), sum("c200"), sum("c201"), sum("c400"), sum("c503"), sum("cother"),
      e.connect, e.read, e.write, e.timeout))
end

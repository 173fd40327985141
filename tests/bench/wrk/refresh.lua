-- grant_type=refresh_token with rotation: every request spends a refresh
-- token that was never used. Each thread starts from its share of the
-- tokens in BENCH_POOL (obtained by exchanging codes; more than one per
-- connection, so that a chain that breaks is replaced)
-- and then spends the token each answer returns, so a chain runs per
-- connection. A failed answer ends its chain; the thread then has one
-- token fewer and counts the shortfall as `exhausted`.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
good_status = 200

local auth = os.getenv("BENCH_AUTH")
local queue

function init(args)
  queue = share_of(os.getenv("BENCH_POOL"), thread_id, tonumber(os.getenv("BENCH_THREADS")))
end

function request()
  local token = table.remove(queue)
  if token == nil then
    exhausted = exhausted + 1
    token = "exhausted"
  end
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, "grant_type=refresh_token&refresh_token=" .. urlencode(token))
end

function response(status, headers, body)
  count(status)
  local next = body:match('"refresh_token":"([^"]+)"')
  if next then
    table.insert(queue, next)
  end
end

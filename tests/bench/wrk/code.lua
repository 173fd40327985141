-- grant_type=authorization_code: each request redeems one code of the
-- thread's share of BENCH_POOL (minted just before the run). A thread whose
-- share runs out stops, and the figure is marked as a lower bound.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
good_status = 200

local auth = os.getenv("BENCH_AUTH")
local suffix = "&redirect_uri=" .. urlencode(os.getenv("BENCH_REDIRECT_URI"))
local codes

function init(args)
  codes = share_of(os.getenv("BENCH_POOL"), thread_id, tonumber(os.getenv("BENCH_THREADS")))
end

function request()
  local code = table.remove(codes)
  if code == nil then
    exhausted = exhausted + 1
    wrk.thread:stop()
    code = "exhausted"
  end
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, "grant_type=authorization_code&code=" .. code .. suffix)
end

function response(status)
  -- The request sent after the share ran out is not counted.
  if exhausted > 0 and status ~= good_status then
    return
  end
  count(status)
end

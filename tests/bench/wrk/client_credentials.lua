-- POST /token with grant_type=client_credentials. BENCH_AUTH is the
-- Authorization header (client_secret_basic) or empty; BENCH_BODY the form.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
good_status = 200

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH") or ""
if auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function response(status)
  count(status)
end

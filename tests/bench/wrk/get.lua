-- GET of the URL given to wrk (discovery, JWKS).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
good_status = 200

function response(status)
  count(status)
end

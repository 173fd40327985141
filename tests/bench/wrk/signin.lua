-- A full sign-in per iteration, as a browser without JavaScript makes it:
-- GET /authorize, the sign-in page, POST /login (password, Argon2id),
-- the second-factor page, POST /login/totp, /authorize/continue, then the
-- client redeems the code at /token. Run with one connection per thread
-- (-t N -c N): the thread's state is the connection's state.
--
-- Users are BENCH_USER_PREFIX<n>@bench.example, n = BENCH_USER_FIRST +
-- thread_id - 1 + k * BENCH_THREADS, each signed in once (a TOTP step is
-- accepted once per user); they share the TOTP code BENCH_TOTP.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
good_status = 200

local threads_n = tonumber(os.getenv("BENCH_THREADS"))
local first = tonumber(os.getenv("BENCH_USER_FIRST"))
local prefix = os.getenv("BENCH_USER_PREFIX")
local password = urlencode(os.getenv("BENCH_PASSWORD"))
local totp = os.getenv("BENCH_TOTP")
local client = os.getenv("BENCH_CLIENT")
local redirect_uri = os.getenv("BENCH_REDIRECT_URI")
local auth = os.getenv("BENCH_AUTH")
local authorize = "/authorize?response_type=code&scope=openid&state=bench&client_id=" ..
  client .. "&redirect_uri=" .. urlencode(redirect_uri)

local k, cookies, next_request
signins = 0

local function cookie_header()
  local parts = {}
  for name, value in pairs(cookies) do
    table.insert(parts, name .. "=" .. value)
  end
  return table.concat(parts, "; ")
end

local function get(path)
  return wrk.format("GET", path, { ["Cookie"] = cookie_header() })
end

local function post(path, body, extra)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie_header() }
  for name, value in pairs(extra or {}) do
    headers[name] = value
  end
  return wrk.format("POST", path, headers, body)
end

local function restart()
  k = k + 1
  cookies = {}
  next_request = get(authorize)
end

function init(args)
  k = -1
  restart()
end

function request()
  return next_request
end

local function hidden(body, name)
  return body:match('name="' .. name .. '" value="([^"]*)"')
end

local function fail(status)
  bad = bad + 1
  if bad <= 3 then
    io.stderr:write("sign-in stopped at status " .. status .. "\n")
  end
  restart()
end

function response(status, headers, body)
  local set = headers["set-cookie"] or headers["Set-Cookie"]
  if set then
    local name, value = set:match("^([^=]+)=([^;]*)")
    cookies[name] = value
  end
  local location = headers["location"] or headers["Location"]
  if location and location:sub(1, 1) == "/" then
    next_request = get(location)
  elseif location and location:sub(1, #redirect_uri) == redirect_uri then
    local code = location:match("[?&]code=([^&]+)")
    if not code then return fail(status) end
    cookies = {}
    next_request = post("/token", "grant_type=authorization_code&code=" .. code ..
      "&redirect_uri=" .. urlencode(redirect_uri), { ["Authorization"] = auth })
  elseif status == 200 and body:find('"id_token"', 1, true) then
    ok = ok + 1
    restart()
  elseif status == 200 and body:find('name="password"', 1, true) then
    local user = prefix .. (first + thread_id - 1 + k * threads_n) .. "@bench.example"
    next_request = post("/login", "tx=" .. urlencode(hidden(body, "tx")) .. "&csrf=" ..
      urlencode(hidden(body, "csrf")) .. "&username=" .. urlencode(user) .. "&password=" .. password)
  elseif status == 200 and body:find('action="/login/totp"', 1, true) then
    next_request = post("/login/totp", "tx=" .. urlencode(hidden(body, "tx")) .. "&csrf=" ..
      urlencode(hidden(body, "csrf")) .. "&code=" .. totp)
  else
    fail(status)
  end
end

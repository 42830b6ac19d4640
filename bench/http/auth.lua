-- bench/http/auth.lua: wrk script that sends sinergi's session token on every request.
-- The token comes from the environment (run.sh logs in and exports SINERGI_TOKEN).
local token = os.getenv("SINERGI_TOKEN")
if not token or token == "" then
   error("set SINERGI_TOKEN to a session token from POST /api/v1/auth/login")
end
wrk.headers["Authorization"] = "Bearer " .. token

-- Forward auth for HAProxy (2.5 or later, built with Lua): HAProxy has no auth_request of its own, so this
-- action asks latchkey's /verify with HAProxy's built-in HTTP client and leaves the answer in variables
-- the configuration acts on (see examples/haproxy/haproxy.cfg and the README, "Forward auth").
--
--   txn.lk_status   200, 401 or 503 (503 too when latchkey cannot be reached)
--   txn.lk_user     the user id (X-User-Id), txn.lk_roles, txn.lk_session, txn.lk_client likewise
--
-- The URL comes from the environment variable LATCHKEY_VERIFY_URL (e.g. http://latchkey:3000/verify).
-- Only the Authorization header and the original method and URI (as Traefik sends them) are forwarded.

local verify_url = os.getenv("LATCHKEY_VERIFY_URL") or "http://127.0.0.1:3000/verify"

local function first(headers, name)
  local v = headers and headers[name]
  if type(v) == "table" then return v[0] or v[1] end
  return v
end

core.register_action("latchkey_auth", { "http-req" }, function(txn)
  local request_headers = {
    ["x-forwarded-method"] = { txn.sf:method() },
    ["x-forwarded-uri"] = { txn.sf:pathq() },
  }
  local authorization = txn.http:req_get_headers()["authorization"]
  if authorization and authorization[0] then request_headers["authorization"] = { authorization[0] } end

  local client = core.httpclient()
  local ok, response = pcall(client.get, client, { url = verify_url, headers = request_headers, timeout = 2000 })
  if not ok or not response or not response.status or response.status == 0 then
    txn:set_var("txn.lk_status", 503)
    return
  end
  txn:set_var("txn.lk_status", response.status)
  if response.status == 200 then
    txn:set_var("txn.lk_user", first(response.headers, "x-user-id") or "")
    txn:set_var("txn.lk_roles", first(response.headers, "x-user-roles") or "")
    txn:set_var("txn.lk_session", first(response.headers, "x-session-id") or "")
    txn:set_var("txn.lk_client", first(response.headers, "x-client-id") or "")
  end
end, 0)

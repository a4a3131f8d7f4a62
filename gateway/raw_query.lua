-- The RPCs that parse their own query (their request declares raw_query) get the query string as their one
-- parameter raw_query, percent-encoded: the transcoder decodes it into that field and finds nothing left to
-- refuse, so the service can name an unknown or repeated parameter itself. RAW_QUERY_PATHS is prepended.
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") ~= "GET" then return end
  local base, query = (headers:get(":path") or ""):match("^([^?]*)%?(.*)$")
  if base ~= nil and RAW_QUERY_PATHS[base] then
    headers:replace(":path", base .. "?raw_query=" .. encode(query))
  end
end

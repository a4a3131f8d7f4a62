-- The RPCs that parse their own query (gateway/rules.py RAW_QUERY) get the query string as their one
-- parameter raw_query, percent-encoded: the transcoder decodes it into that field and finds nothing left to
-- refuse, so the service can name an unknown or repeated parameter itself. config.py prepends RAW_QUERY_PATHS.
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

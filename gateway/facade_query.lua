-- FACADES (prepended by the config generator): the REST paths of the facade RPCs, whose request is only the
-- URL's query string. Their query reaches the service whole, as `query`: the transcoder would refuse an
-- unknown or repeated parameter itself, unnamed, where the facade must name it (MONITORING.md 0.3).
local function encode(s)
  return (s:gsub("[^A-Za-z0-9_.~-]", function(c) return string.format("%%%02X", c:byte()) end))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local route, query = string.match(headers:get(":path") or "", "^([^?]*)%??(.*)$")
  if route ~= nil and FACADES[route] and headers:get(":method") == "GET" then
    headers:replace(":path", route .. "?query=" .. encode(query))
  end
end

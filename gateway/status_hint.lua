
-- Control characters, quotes, backslashes and non-ASCII bytes (the transcoder echoes raw input) as \u00XX.
local function json_string(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

-- Before the transcoder the path is still the REST one: a legacy path (anything but /v1/...) is remembered for
-- the response, where the legacy-only hint applies (e.g. 422 on legacy /integrations validation, 400 on /v1).
function envoy_on_request(handle)
  local path = handle:headers():get(":path") or ""
  if string.sub(path, 1, 4) ~= "/v1/" then
    handle:streamInfo():dynamicMetadata():set("aos.status_hint", "legacy", true)
  end
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local ctype = headers:get("content-type") or ""
  local hint = headers:get("x-aos-http-status")
  local legacy_hint = headers:get("x-aos-legacy-http-status")
  if legacy_hint ~= nil then
    headers:remove("x-aos-legacy-http-status")
    local seen = handle:streamInfo():dynamicMetadata():get("aos.status_hint")
    if seen ~= nil and seen["legacy"] then
      hint = legacy_hint
    end
  end
  if hint ~= nil then
    headers:remove("x-aos-http-status")
    if string.find(ctype, "application/json", 1, true) then
      headers:replace(":status", hint)
    end
  end
  -- The transcoder refuses malformed or mistyped JSON in plain text; REST callers always get JSON.
  local status = tonumber(headers:get(":status")) or 0
  if status >= 400 and string.find(ctype, "text/plain", 1, true) then
    headers:replace("content-type", "application/json")  -- headers first: body() sends them on
    local body = handle:body()
    local text = body and body:getBytes(0, body:length()) or ""
    local json = '{"error":"invalid_request","message":' .. json_string(text) .. '}'
    if body then body:setBytes(json) end
  end
end

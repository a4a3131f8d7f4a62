-- The client's x-request-id was set aside (x-aos-client-request-id) before Envoy generated one; it is put
-- back only in the strict form (8-128 of A-Z a-z 0-9 - _), so nothing else reaches the services' logs.
function envoy_on_request(handle)
  local headers = handle:headers()
  local given = headers:get("x-aos-client-request-id")
  headers:remove("x-aos-client-request-id")
  if given ~= nil and #given >= 8 and #given <= 128 and string.find(given, "^[A-Za-z0-9_-]+$") then
    headers:replace("x-request-id", given)
  end
end

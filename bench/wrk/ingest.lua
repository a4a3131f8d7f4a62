-- wrk script of bench/ingest.py: `wrk ... -s bench/wrk/ingest.lua <url> -- <integration key> <records> <run tag>`
-- posts batches (or, with 1 record, single records) of usage records whose call_ids are unique per run,
-- thread and request, with only the X-CUS-Integration-Key header, as the newer SDK's reporter does.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  wrk.headers["X-CUS-Integration-Key"] = args[1]
  wrk.headers["Content-Type"] = "application/json"
  size = tonumber(args[2])
  prefix = args[3] .. "-" .. tid .. "-"
  sent = 0
end

local function record(id)
  return string.format(
    '{"call_id":"%s","provider":"openai","model":"gpt-4o","tokens_in":100,"tokens_out":50,"cost_cents":1}', id
  )
end

function request()
  sent = sent + 1
  if size == 1 then
    return wrk.format("POST", nil, nil, record(prefix .. sent))
  end
  local parts = {}
  for i = 1, size do
    parts[i] = record(prefix .. sent .. "-" .. i)
  end
  return wrk.format("POST", nil, nil, '{"records":[' .. table.concat(parts, ",") .. ']}')
end

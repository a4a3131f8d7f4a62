-- wrk script of bench/calls.py: `wrk ... -s bench/wrk/post.lua <url> -- <tag> <body> <header> <value>...`
-- POSTs `body` as JSON, its "%s" replaced by a name unique to this run (tag), thread and request, with
-- `header` set to the next of the values in turn: one tenant's token, or 16 tenants' tokens rotating.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  body = args[2]
  header = args[3]
  values = {}
  for i = 4, #args do
    values[#values + 1] = args[i]
  end
  sent = 0
end

function request()
  sent = sent + 1
  local headers = {["Content-Type"] = "application/json", [header] = values[sent % #values + 1]}
  return wrk.format("POST", nil, headers, string.format(body, prefix .. sent))
end

-- wrk: POST a new guestbook message on every request, each with its own text.
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local body = string.format('{"author":"bench","text":"message %d from wrk"}', counter)
  return wrk.format(nil, nil, nil, body)
end

-- deploy/wrk/pipeline.lua - wrk script: HTTP/1.1 pipelining.
-- Each write carries DEPTH requests back to back (default 16), built with
-- wrk.format() from the URL's path, wrk.method and wrk.headers; wrk then
-- reads DEPTH responses before it writes again.
--   wrk -t1 -c64 -d10s --latency -s deploy/wrk/pipeline.lua URL [-- DEPTH]

local req

init = function(args)
   local depth = tonumber(args[1]) or 16
   if depth < 1 then depth = 1 end
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end

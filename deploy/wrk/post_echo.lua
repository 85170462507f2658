-- deploy/wrk/post_echo.lua - wrk script: every request is a POST with a
-- body of BYTES bytes (default 1024, 1 KiB) of printable text and
-- Content-Type: text/plain; corio's POST /echo answers the body back.
--   wrk -t1 -c64 -d10s --latency -s deploy/wrk/post_echo.lua http://127.0.0.1:8080/echo [-- BYTES]
-- wrk adds the Content-Length. Non-2xx answers show in wrk's report.

init = function(args)
   local bytes = tonumber(args[1]) or 1024
   if bytes < 0 then bytes = 0 end
   local filler = "corio load kit: POST /echo body. "
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "text/plain"
   wrk.body = string.rep(filler, math.ceil(bytes / #filler)):sub(1, bytes)
end

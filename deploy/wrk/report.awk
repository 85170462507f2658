# deploy/wrk/report.awk - reads one wrk --latency report and prints
#   REQUESTS RPS P50_MS P99_MS ERRORS
# P99_MS is -1 when the report has no 99% line; ERRORS counts socket errors
# (connect, read, write, timeout) and answers other than 2xx/3xx. Exits 1
# when the input is not such a report. Used by deploy/load.sh and by
# tests/bench/lib.sh (bench_wrk_parse).
#   awk -f deploy/wrk/report.awk wrk-output.txt

function ms(v,   n, u) {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") return n / 1000
    if (u == "ms") return n
    if (u == "s")  return n * 1000
    if (u == "m")  return n * 60000
    if (u == "h")  return n * 3600000
    return -1
}
/ requests in /         { req = $1 }
/^Requests\/sec:/       { rps = $2 }
/^ +50% /               { p50 = ms($2) }
/^ +99% /               { p99 = ms($2) }
/Socket errors:/        { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
/Non-2xx or 3xx/        { err += $NF }
END {
    if (req == "" || rps == "" || p50 == "") exit 1
    if (p99 == "") p99 = -1
    printf "%d %.2f %.4f %.4f %d\n", req, rps, p50, p99, err
}

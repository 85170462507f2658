#!/usr/bin/env bash
# tests/docker/cluster_test.sh - corio's image and deploy/docker-compose.yml's
# 3-member cluster, for real: installs Debian's docker.io (20.10) and
# docker-compose (v1) if missing, starts a dockerd of its own in the
# background (its own data root, exec root and socket), makes the base image
# with debootstrap (no registry is needed: deploy/docker-base-image.sh),
# builds the image and a WebSocket client image, and checks:
#   - the image: non-root, EXPOSE 8080, STOPSIGNAL SIGTERM, tini as PID 1;
#   - the cluster, through the published ports 8081-8083: each member's
#     /cluster says self is its own entry (hostN:8080) and state found, with
#     its own /server_id, and the other two up with their /server_id;
#   - the members run under deploy/seccomp-io_uring.json, which allows the
#     io_uring calls;
#   - a client container on the cluster's network gets its WebSocket echo
#     from each member by service name (ws://hostN:8080/ws/echo);
#   - the HEALTHCHECK (corio --probe) turns each member healthy;
#   - `docker-compose down` of the idle cluster takes under 5 s, and each
#     member shut down gracefully (its log says so; exit status 0, not a
#     SIGKILL);
#   - with a seccomp profile that refuses the three io_uring calls, corio
#     exits non-zero with one line that says so and names the fix;
#   - the Debian packages (deploy/deb.sh, built here while debootstrap
#     runs) install, run and purge in a clean container of the base image
#     (tests/docker/deb_test.sh).
# Whatever happens, a trap removes all it made: the containers, the dockerd
# and its containerd, their directories, docker0 and the iptables rules and
# chains dockerd added, and it puts back ip_forward. Root only. Fails (never
# skips) when something cannot be done, dockerd's start first of all.
# Every wait is bounded. About 3 minutes on 2 cores, most of it the image
# builds (apt-get inside them; debootstrap).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
t0=$SECONDS
say() { printf 'docker-test: [%3d s] %s\n' $((SECONDS - t0)) "$*"; }
fail() {
    printf 'docker-test: FAIL: %s\n' "$*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root (dockerd, iptables)"

. deploy/deps.sh
corio_install_deps docker

docker=/usr/bin/docker # Debian's client (another one on PATH may lack compose's API level)
compose=/usr/bin/docker-compose
name=corio-test-docker
data=/var/lib/$name
exec_root=/run/$name
sock=/run/$name.sock
pidfile=/run/$name.pid
project=corioci
net=${project}_default
export DOCKER_HOST=unix://$sock
export COMPOSE_PROJECT_NAME=$project
tmp=$(mktemp -d /tmp/corio-docker-test.XXXXXX)

# ---- what is here before: put back by the trap -------------------------
if pgrep -x dockerd >/dev/null; then
    fail "a dockerd is already running (pid $(pgrep -x dockerd | tr '\n' ' ')): this test starts its own, with its own docker0 and iptables rules; stop the other first"
fi
ipt_tables=(filter nat)
for t in "${ipt_tables[@]}"; do
    iptables -t "$t" -S >"$tmp/ipt.$t.before" 2>/dev/null
done
ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort >"$tmp/links.before"
fwd_before=$(sysctl -n net.ipv4.ip_forward)
made_paths=()
for p in /run/docker /run/containerd /run/runc /etc/docker/key.json; do
    [ -e "$p" ] || made_paths+=("$p")
done
dockerd_pid=
deb_build=

cleanup() {
    local rc=$? t p
    set +e
    # deploy/deb.sh and its compilers (timeout leads their process group)
    [ -n "$deb_build" ] && { kill -TERM -- -"$deb_build" || kill -TERM "$deb_build"; } 2>/dev/null
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        say "cleanup: removing the containers"
        (cd deploy && timeout 30 "$compose" down --remove-orphans --timeout 2 >/dev/null 2>&1)
        timeout 20 "$docker" rm -f "$project-ws" "$project-deny" corio-deb-test >/dev/null 2>&1
        say "cleanup: stopping dockerd"
        kill -TERM "$dockerd_pid"
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$dockerd_pid" 2>/dev/null && {
            tail -n 20 "$tmp/dockerd.log" >&2
            echo "docker-test: dockerd did not stop in 20 s (log above): SIGKILL" >&2
            kill -KILL "$dockerd_pid"
        }
    fi
    # containerd and shims this dockerd started (they name its exec root)
    for p in $(pgrep -f -- "$exec_root" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    # anything still mounted below the data or exec root (overlays, netns)
    findmnt -rn -o TARGET | grep -E "^($data|$exec_root)(/|$)" | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    say "cleanup: removing $data, docker0, dockerd's iptables rules"
    rm -rf --one-file-system "$data" "$exec_root" "$sock" "$pidfile"
    for p in "${made_paths[@]}"; do rm -rf --one-file-system "$p"; done
    # links dockerd made: docker0, br-*, veth*
    ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort >"$tmp/links.after"
    comm -13 "$tmp/links.before" "$tmp/links.after" | grep -E '^(docker0|br-[0-9a-f]+|veth[0-9a-f]+)$' |
        while read -r l; do ip link delete "$l" 2>/dev/null; done
    # iptables: delete the rules dockerd added, then its chains, then put
    # back the policies (it sets FORWARD to DROP when ip_forward was 0)
    for t in "${ipt_tables[@]}"; do
        iptables -t "$t" -S >"$tmp/ipt.$t.after" 2>/dev/null
        grep -vxF -f "$tmp/ipt.$t.before" "$tmp/ipt.$t.after" | grep '^-A ' | tac |
            while read -r rule; do eval "iptables -t $t -D ${rule#-A }"; done
        grep -vxF -f "$tmp/ipt.$t.before" "$tmp/ipt.$t.after" | grep '^-N ' |
            while read -r _ chain; do iptables -t "$t" -F "$chain"; iptables -t "$t" -X "$chain"; done
        grep '^-P ' "$tmp/ipt.$t.before" | while read -r _ chain policy; do iptables -t "$t" -P "$chain" "$policy"; done
        iptables -t "$t" -S >"$tmp/ipt.$t.after" 2>/dev/null
        diff -u "$tmp/ipt.$t.before" "$tmp/ipt.$t.after" >&2 || { echo "docker-test: iptables $t table not restored" >&2; rc=1; }
    done
    sysctl -qw net.ipv4.ip_forward="$fwd_before"
    rm -rf "$tmp"
    say "cleanup done"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The Debian packages, built meanwhile (debootstrap spends its time waiting
# for the mirror): deb_test.sh checks them once the base image is there.
timeout 600 deploy/deb.sh "$tmp/debs" >"$tmp/deb-build.log" 2>&1 &
deb_build=$!

# ---- dockerd --------------------------------------------------------------
# ip_forward before dockerd starts: with it off, dockerd turns it on and sets
# the FORWARD policy to DROP, which breaks every other bridge on the machine.
sysctl -qw net.ipv4.ip_forward=1
rm -rf --one-file-system "$data" "$exec_root" "$sock" "$pidfile" # a crashed run's
say "starting dockerd ($(dockerd --version))"
setsid dockerd --data-root "$data" --exec-root "$exec_root" -H "unix://$sock" --pidfile "$pidfile" \
    >"$tmp/dockerd.log" 2>&1 </dev/null &
dockerd_pid=$!
for i in $(seq 150); do
    timeout 5 "$docker" version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 30 "$tmp/dockerd.log" >&2; fail "dockerd exited at start (log above)"; }
    [ "$i" -lt 150 ] || { tail -n 30 "$tmp/dockerd.log" >&2; fail "dockerd did not answer within 30 s (log above)"; }
    sleep 0.2
done
say "dockerd answers: $("$docker" info -f '{{.ServerVersion}}, {{.Driver}}, seccomp: {{.SecurityOptions}}')"

# ---- images ---------------------------------------------------------------
timeout 300 deploy/docker-base-image.sh debian:bookworm-slim

# ---- the Debian packages in a clean container ------------------------------
say "base image there; waiting for deploy/deb.sh"
wait "$deb_build" || { tail -n 30 "$tmp/deb-build.log" >&2; fail "deploy/deb.sh failed (tail of its output above)"; }
deb_build=
say "built the Debian packages (deploy/deb.sh); installing them in a clean debian:bookworm-slim container"
tests/docker/deb_test.sh "$tmp/debs" || fail "the Debian packages (tests/docker/deb_test.sh, above)"
say "building the client image (in the background) and corio's image"
timeout 300 "$docker" build -q -t corio-wsclient -f tests/docker/wsclient.Dockerfile tests/docker \
    >"$tmp/wsclient-build.log" 2>&1 &
ws_build=$!
timeout 600 "$docker" build -t corio:latest -f deploy/Dockerfile . >"$tmp/build.log" 2>&1 ||
    { tail -n 40 "$tmp/build.log" >&2; fail "docker build of deploy/Dockerfile failed (tail of its output above)"; }
wait "$ws_build" || { cat "$tmp/wsclient-build.log" >&2; fail "the client image did not build"; }
say "built: corio:latest, $(($("$docker" image inspect -f '{{.Size}}' corio:latest) / 1000000)) MB"
cfg=$("$docker" image inspect -f '{{.Config.User}} {{json .Config.ExposedPorts}} {{.Config.StopSignal}} {{json .Config.Entrypoint}}' corio:latest)
[ "$cfg" = 'corio:corio {"8080/tcp":{}} SIGTERM ["tini","--","corio"]' ] || fail "image config: $cfg"

# ---- the cluster ------------------------------------------------------------
say "docker-compose up (deploy/docker-compose.yml)"
(cd deploy && timeout 120 "$compose" up -d --no-build) >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log" >&2; fail "docker-compose up failed"; }
cids=()
for i in 0 1 2; do
    cid=$(cd deploy && "$compose" ps -q "host$i")
    [ -n "$cid" ] || fail "no container for host$i"
    cids+=("$cid")
done

# Each member's /server_id, then /cluster until it has converged (bounded).
ids=()
for i in 0 1 2; do
    id=
    for _ in $(seq 100); do
        id=$(curl -sf --max-time 2 "http://localhost:808$((i + 1))/server_id" | tr -d '"') && [ -n "$id" ] && break
        sleep 0.2
    done
    [ -n "$id" ] || fail "host$i: no /server_id on localhost:808$((i + 1)) in 20 s"
    ids+=("$id")
done
check_cluster() { # i: exit 0 when host$i's /cluster is right, else print why
    curl -sf --max-time 2 "http://localhost:808$(($1 + 1))/cluster" | python3 -c '
import json, sys
i, ids = int(sys.argv[1]), sys.argv[2:]
c = json.load(sys.stdin)
want = ["host%d:8080" % j for j in range(3)]
bad = []
if c["self"] != want[i] or c["id"] != ids[i] or c["state"] != "found":
    bad.append("self %s, id %s, state %s" % (c["self"], c["id"], c["state"]))
if [p["name"] for p in c["peers"]] != want:
    bad.append("entries %s" % [p["name"] for p in c["peers"]])
for j, p in enumerate(c["peers"]):
    if p["id"] != ids[j] or not p["up"] or p["self"] != (j == i) or p["alias"]:
        bad.append("%s: %s" % (p["name"], json.dumps(p)))
if bad:
    sys.exit("; ".join(bad))
print("self %s (id %s), found; %s up" % (c["self"], c["id"][:8],
      ", ".join("%s=%s" % (p["name"], p["id"][:8]) for p in c["peers"] if not p["self"])))
' "$1" "${ids[@]}"
}
for i in 0 1 2; do
    for n in $(seq 100); do
        out=$(check_cluster "$i" 2>&1) && break
        [ "$n" -lt 100 ] || fail "host$i's /cluster did not converge in 20 s: $out"
        sleep 0.2
    done
    say "localhost:808$((i + 1))/cluster: $out"
done

for i in 0 1 2; do
    # the profile compose passed (its JSON) allows the io_uring calls
    "$docker" inspect -f '{{json .HostConfig.SecurityOpt}}' "${cids[$i]}" | python3 -c '
import json, sys
opts = json.load(sys.stdin)
prof = [json.loads(o[len("seccomp="):]) for o in opts if o.startswith("seccomp=")]
ok = len(prof) == 1 and prof[0]["defaultAction"] == "SCMP_ACT_ERRNO" and any(
    r["action"] == "SCMP_ACT_ALLOW" and {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= set(r["names"])
    for r in prof[0]["syscalls"])
sys.exit(0 if ok else "host%s: not run under deploy/seccomp-io_uring.json: %.200s" % (sys.argv[1], opts))
' "$i"
    top=$("$docker" top "${cids[$i]}" -o pid,uid,args | awk 'NR > 1 {print $2, $3}' | tr '\n' ' ')
    [ "$top" = "10001 tini 10001 corio " ] || fail "host$i's processes: $top (want tini and corio as uid 10001)"
done
say "members run as uid 10001 under tini, with deploy/seccomp-io_uring.json"

say "WebSocket echo from each member by service name, from a client container on $net"
timeout 60 "$docker" run --rm --name "$project-ws" --network "$net" corio-wsclient \
    ws://host0:8080/ws/echo ws://host1:8080/ws/echo ws://host2:8080/ws/echo >"$tmp/ws.log" 2>&1 ||
    { cat "$tmp/ws.log" >&2; fail "WebSocket echo through the cluster's network"; }
sed 's/^/    /' "$tmp/ws.log"

# HEALTHCHECK: corio --probe http://127.0.0.1:8080/healthz, every 5 s
for i in 0 1 2; do
    for n in $(seq 60); do
        h=$("$docker" inspect -f '{{.State.Health.Status}}' "${cids[$i]}")
        [ "$h" = healthy ] && break
        [ "$n" -lt 60 ] && [ "$h" != unhealthy ] ||
            fail "host$i's health: $h: $("$docker" inspect -f '{{json .State.Health.Log}}' "${cids[$i]}" | head -c 600)"
        sleep 0.5
    done
done
say "HEALTHCHECK: all three healthy"

# ---- docker-compose down ------------------------------------------------------
followers=()
for i in 0 1 2; do
    timeout 30 "$docker" logs -f "${cids[$i]}" >"$tmp/host$i.log" 2>&1 &
    followers+=($!)
    timeout 30 "$docker" wait "${cids[$i]}" >"$tmp/host$i.exit" 2>&1 &
    followers+=($!)
done
for _ in $(seq 50); do # the followers are attached once the logs so far are out
    [ -s "$tmp/host0.log" ] && [ -s "$tmp/host1.log" ] && [ -s "$tmp/host2.log" ] && break
    sleep 0.1
done
start=$(date +%s%N)
(cd deploy && timeout 30 "$compose" down) >"$tmp/down.log" 2>&1 || { cat "$tmp/down.log" >&2; fail "docker-compose down failed"; }
down_ms=$((($(date +%s%N) - start) / 1000000))
wait "${followers[@]}" || true # they end with their containers
for i in 0 1 2; do
    grep -q "Terminated: shutting down gracefully" "$tmp/host$i.log" && grep -q "] stopped$" "$tmp/host$i.log" ||
        { tail -n 5 "$tmp/host$i.log" >&2; fail "host$i: no graceful shutdown in its log (tail above)"; }
    [ "$(cat "$tmp/host$i.exit")" = 0 ] || fail "host$i did not exit 0: $(cat "$tmp/host$i.exit")"
done
[ "$down_ms" -lt 5000 ] || fail "docker-compose down took $down_ms ms (limit 5000)"
say "docker-compose down: $down_ms ms; each member logged a graceful shutdown and exited 0"

# ---- io_uring refused by seccomp ------------------------------------------
set +e
out=$(timeout 30 "$docker" run --rm --name "$project-deny" \
    --security-opt seccomp="$root/tests/docker/seccomp-deny-io_uring.json" corio:latest 2>&1)
rc=$?
set -e
lines=$(printf '%s\n' "$out" | grep -c .)
[ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && printf '%s' "$out" | grep -q io_uring &&
    printf '%s' "$out" | grep -qF 'seccomp=deploy/seccomp-io_uring.json' ||
    fail "with io_uring refused: exit $rc, output: $out"
say "io_uring refused by seccomp: exit $rc: $out"

say "all Docker checks passed"

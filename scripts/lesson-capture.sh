#!/usr/bin/env bash
# Re-capture the outputs quoted in docs/lesson.md: bring the lab up (root),
# run each lesson command, save outputs and screenshots under /tmp/lesson, stop the lab.
set -u
cd "$(dirname "$0")/.." || exit 1
command -v jq > /dev/null || { echo "lesson-capture: jq is needed (apt-get install jq)" >&2; exit 1; }
# Word splitting of $L (the lab command) is wanted here.
# shellcheck disable=SC2086
OUT=/tmp/lesson; rm -rf $OUT; mkdir -p $OUT
L=".venv/bin/python -m lab"
$L up --quiet > $OUT/up.log 2>&1 &
UP=$!
for _ in $(seq 120); do curl -sf -o /dev/null http://127.0.0.1:8080/readyz && break; sleep 1; done
for _ in $(seq 120); do $L get pods 2>/dev/null | grep -q " 0/1 " || break; sleep 1; done; sleep 3
run() { local name=$1; shift; echo "\$ $*" > $OUT/$name.txt; "$@" >> $OUT/$name.txt 2>&1; }
run get_pods $L get pods
run get_svc $L get svc
run get_eps $L get endpointslices
BE=$($L get pods | awk '$1 ~ /^backend/ {print $1; exit}')
FE=$($L get pods | awk '$1 ~ /^frontend/ {print $1; exit}')
echo "BE=$BE FE=$FE" > $OUT/names.txt
run delete_pod $L delete $BE
for _ in $(seq 60); do sleep 1; $L get pods 2>/dev/null | grep -q " 0/1 " || break; done; sleep 2
run get_pods_after $L get pods
run get_eps_after $L get endpointslices
run resolve ip netns exec cip-$FE getent hosts backend backend.clusterip-demo.svc.cluster.local mysql redis
run services_chain iptables -t nat -S CIP-SERVICES
SVC=$(iptables -t nat -S CIP-SERVICES | grep "clusterip-demo/backend:http" | grep -o "CIP-SVC-[A-Z0-9]*" | head -1)
run backend_chain iptables -t nat -S $SVC
SEP=$(iptables -t nat -S $SVC | grep -o "CIP-SEP-[A-Z0-9]*" | head -1)
run backend_sep iptables -t nat -S $SEP
# The lesson shows these two through jq filters; run them exactly so.
echo "\$ curl -s http://127.0.0.1:8080/api/route | jq -r '.hops[] | [.key, .value, .detail] | @tsv'" > $OUT/route.txt
curl -s http://127.0.0.1:8080/api/route | jq -r '.hops[] | [.key, .value, .detail] | @tsv' >> $OUT/route.txt 2>&1
echo "\$ curl -s \"http://127.0.0.1:8080/api/spread?n=60\" | jq -c '.fresh_connections, .one_kept_alive_connection | {answered, connections_opened, pods}'" > $OUT/spread.txt
curl -s "http://127.0.0.1:8080/api/spread?n=60" | jq -c '.fresh_connections, .one_kept_alive_connection | {answered, connections_opened, pods}' >> $OUT/spread.txt 2>&1
curl -s http://127.0.0.1:8080/api/route > $OUT/route.json
echo "\$ ip netns exec cip-$FE timeout 3 bash -c 'echo > /dev/tcp/mysql/3306' && echo open || echo blocked" > $OUT/netpol_frontend.txt
ip netns exec cip-$FE timeout 3 bash -c 'echo > /dev/tcp/mysql/3306' >> $OUT/netpol_frontend.txt 2>&1 && echo open >> $OUT/netpol_frontend.txt || echo blocked >> $OUT/netpol_frontend.txt
BE2=$($L get pods | awk '$1 ~ /^backend/ {print $1; exit}')
echo "\$ ip netns exec cip-$BE2 timeout 3 bash -c 'echo > /dev/tcp/mysql/3306' && echo open || echo blocked" > $OUT/netpol_backend.txt
ip netns exec cip-$BE2 timeout 3 bash -c 'echo > /dev/tcp/mysql/3306' >> $OUT/netpol_backend.txt 2>&1 && echo open >> $OUT/netpol_backend.txt || echo blocked >> $OUT/netpol_backend.txt
run netpol_chain iptables -S CIP-NETPOL
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --window-size=1280,1250 --screenshot=$OUT/lab-page.png http://127.0.0.1:8080/ > /dev/null 2>&1
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --window-size=1280,900 --screenshot=$OUT/lab-spread.png "http://127.0.0.1:8080/spread?n=60" > /dev/null 2>&1
kill -INT $UP; wait $UP
head -60 $OUT/up.log > $OUT/up_head.txt
$L check > $OUT/check.txt 2>&1; echo "exit $?" >> $OUT/check.txt

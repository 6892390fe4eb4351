#!/usr/bin/env bash
# Two hosts joined by a network: a 2-rank training whose ranks live in two
# Linux network namespaces connected by a veth pair, Open MPI restricted to
# TCP over that link (btl self,tcp, pml ob1, both TCP components on the test
# subnet, the remote daemon started through tools/netns-rsh.sh), so the
# allreduce and gathers cross a network stack as between cluster nodes.
#
# It must end with the same parameters as the same run over shared memory,
# bit for bit. The transport moves bytes; it does not choose the reduction:
# Open MPI picks the allreduce algorithm by communicator and message size,
# and with 2 ranks every algorithm adds exactly two floats per element,
# a + b == b + a in IEEE arithmetic. (With more ranks the order of the sums
# could differ between algorithms, and a node-aware collective component
# could pick another one across hosts; then a 1e-6 tolerance would be the
# honest test.)
#
# Skipped, with the reason, where namespaces cannot be made (no CAP_SYS_ADMIN,
# no iproute2). Traffic stays on 10.203.0.0/24 between the two namespaces.
source "$(dirname "$0")/lib.sh"

skip() {
  echo "SKIP: $*"
  echo "two_hosts: 0 passed, 0 failed, 1 skipped"
  exit 77
}
command -v ip >/dev/null || skip "no 'ip' command (iproute2; tools/install-test-deps.sh installs it)"
[ "$(id -u)" -eq 0 ] || skip "creating network namespaces needs root (CAP_SYS_ADMIN)"

# Names unique to this test run; interface names have at most 15 characters.
ns_a=thorax-a-$$
ns_b=thorax-b-$$
veth_a=thxa$$
veth_b=thxb$$
cleanup() {
  local status=$? ns pid
  for ns in "$ns_a" "$ns_b"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

ip netns add "$ns_a" 2>"$WORK/ns.err" || skip "cannot create a network namespace: $(cat "$WORK/ns.err")"
ip netns add "$ns_b" 2>"$WORK/ns.err" || skip "cannot create a network namespace: $(cat "$WORK/ns.err")"
ip link add "$veth_a" type veth peer name "$veth_b" 2>"$WORK/ns.err" ||
  skip "cannot create a veth pair: $(cat "$WORK/ns.err")"
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.203.0.1/24 dev "$veth_a"
ip -n "$ns_b" addr add 10.203.0.2/24 dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up

cd "$WORK"
"$THORAX_BIN" phantom --out h.h5 --patients 40 --size 32 --seed 13 >/dev/null
cat > h.yaml <<YAML
name: h
seed: 4
data: {path: $WORK/h.h5}
YAML
cat "$THORAX_SOURCE_DIR/tests/configs/tiny_net.yaml" >> h.yaml
cat >> h.yaml <<YAML
train:
  epochs: 4
  batch_per_rank: 4
  optimizer: {type: adam, lr: 0.002}
runtime: {out_dir: $WORK/runs}
YAML

printf '10.203.0.1 slots=1\n10.203.0.2 slots=1\n' > hosts
veth_bytes() { ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/$1_bytes"; }
tx0=$(veth_bytes tx)
rx0=$(veth_bytes rx)
# mpirun in host A's namespace: rank 0 runs there, and the daemon for host B
# is started in B's through the agent. timeout: a hung TCP wire-up fails the
# test instead of the ctest time limit.
timeout 300 ip netns exec "$ns_a" "$MPIEXEC" -np 2 --hostfile hosts \
  --mca plm_rsh_agent "$THORAX_SOURCE_DIR/tools/netns-rsh.sh" \
  --mca pml ob1 --mca btl self,tcp \
  --mca btl_tcp_if_include 10.203.0.0/24 --mca oob_tcp_if_include 10.203.0.0/24 \
  -x OPENBLAS_NUM_THREADS \
  "$THORAX_BIN" train h.yaml --set name=tcp >tcp.log 2>&1 || { cat tcp.log; fail "the training over TCP between namespaces"; }
tx=$(($(veth_bytes tx) - tx0))
rx=$(($(veth_bytes rx) - rx0))
echo "two_hosts: $tx bytes sent and $rx received over the veth link"
# 4 epochs x 8 steps of a 1332-parameter gradient allreduce each way.
[ "$tx" -gt 100000 ] && [ "$rx" -gt 100000 ] || fail "the ranks did not talk over the veth link ($tx/$rx bytes)"

mpi 2 "$THORAX_BIN" train h.yaml --set name=shm >shm.log 2>&1 || { cat shm.log; fail "the same training over shared memory"; }
"$TOOLS/ckpt_compare" runs/tcp/checkpoints/last.h5 runs/shm/checkpoints/last.h5 0 >cmp.txt ||
  { cat cmp.txt; fail "TCP between hosts and shared memory give different parameters"; }
cmp -s runs/tcp/eval/test/predictions.csv runs/shm/eval/test/predictions.csv ||
  fail "TCP between hosts and shared memory give different test predictions"
echo "two_hosts: 1 passed, 0 failed"

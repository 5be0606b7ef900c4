#!/usr/bin/env bash
# The network on the microcontroller: builds the `net-check` firmware
# (firmware-example/, board crate boards/mps2-an386), starts a TCP and UDP
# echo server on this machine's loopback, and boots the firmware on QEMU's
# mps2-an386 (a Cortex-M4) with its LAN9118 on QEMU's user-mode network.
# The firmware gets an address by DHCP, sends 256 KiB over TCP to the echo
# server at 10.0.2.2 (QEMU's name for the host's 127.0.0.1) and checks
# every byte that comes back, then does one UDP round trip; it prints the
# numbers.
#
# Exits with QEMU's status: 0 when every check passed, 1 on a failure,
# 124 when the timeout had to stop QEMU. Nothing is left behind: the echo
# server and its temporary directory go with the script, so it can run
# again at once.
#
# Needs: rustup's thumbv7em-none-eabihf target, qemu-system-arm (with the
# lan9118 and user-mode networking, as Debian's has), python3, binutils'
# size.
set -euo pipefail

# The firmware's rustflags (source paths remapped), as every firmware build has them.
. "$(dirname "$0")/firmware-flags.sh"
cd "$(dirname "$0")/../firmware-example"

# Release: LTO, opt-level "s", one codegen unit (Cargo.toml).
cargo build --quiet --release --bin net-check
elf=target/thumbv7em-none-eabihf/release/net-check

echo "flash (.vector_table + .text + .rodata + .data) and RAM (.data + .bss) of ${elf}:"
size -A "$elf" | awk '$1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ {
    printf "  %-14s %10d bytes\n", $1, $2
}'

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The echo server: TCP and UDP on one free port of 127.0.0.1, which it
# writes to $work/port once both are bound. It echoes until killed, and
# says on stderr what it echoed.
python3 -u - "$work/port" <<'EOF' &
import os
import socket
import sys
import threading

def bind_pair():
    # A free TCP port, then UDP on the same number; another program may
    # hold that UDP port, so try a few.
    for _ in range(20):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        tcp.listen(4)
        return tcp, udp, port
    sys.exit("echo server: no port free for both TCP and UDP")

def echo_tcp(conn, peer):
    total = 0
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
            total += len(data)
    print(f"host echo server: TCP from {peer[0]}:{peer[1]}: {total} bytes echoed",
          file=sys.stderr)

def serve_tcp(tcp):
    while True:
        conn, peer = tcp.accept()
        threading.Thread(target=echo_tcp, args=(conn, peer), daemon=True).start()

def serve_udp(udp):
    while True:
        data, peer = udp.recvfrom(65536)
        udp.sendto(data, peer)
        print(f"host echo server: UDP from {peer[0]}:{peer[1]}: {len(data)} bytes echoed",
              file=sys.stderr)

tcp, udp, port = bind_pair()
threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
# Written whole, then renamed, so the script never reads half a number.
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(port))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
serve_tcp(tcp)
EOF
server=$!

for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    kill -0 "$server" 2>/dev/null || { echo "error: the echo server did not start" >&2; exit 1; }
    sleep 0.1
done
if [ ! -s "$work/port" ]; then
    echo "error: the echo server did not say its port within 10 s" >&2
    exit 1
fi
port=$(cat "$work/port")
echo "host echo server: TCP and UDP on 127.0.0.1:${port} (the firmware's 10.0.2.2:${port})"
echo

# mps2-an386's LAN9118 is its on-board NIC: `-nic` with model=lan9118
# gives it QEMU's user-mode network (DHCP server, 10.0.2.2 = the host) and
# the MAC address the firmware reads back. The firmware reads the port
# from its semihosting command line.
status=0
timeout --kill-after=10 120 \
    qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config "enable=on,target=native,arg=net-check,arg=${port}" \
    -nic user,model=lan9118,mac=52:54:00:12:34:56 \
    -kernel "$elf" || status=$?
if [ "$status" -eq 124 ]; then
    echo "error: QEMU did not exit within 120 s" >&2
fi
exit "$status"

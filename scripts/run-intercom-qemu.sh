#!/usr/bin/env bash
# The door intercom in a real call: starts `satsuma-sfu` on this machine's
# loopback, boots the `intercom` firmware on QEMU's mps2-an386 (a Cortex-M4
# with its LAN9118 on QEMU's user-mode network) pointed at the SFU's
# intercom link, and once the door is in its room, joins it with the
# desktop engine's `satsuma-headless` (a separate process, real codecs).
#
# It checks, from the firmware's log and the desktop's JSON events:
#   - the door asked the SFU for the time, joined, and (no desktop there
#     yet) created the group as its committer;
#   - both show the same safety number in the epoch they share;
#   - the desktop opened the door's G.711 audio with no failure and hears
#     its 500 Hz tone; the door opened the desktop's with no failure and
#     hears its 660 Hz tone;
#   - with its cable pulled for 7 s (QEMU's monitor, `set_link`), past the
#     SFU's idle timeout, the door loses its link, comes back (resuming its
#     seat, or joining afresh) and hears the desktop again;
#   - when the desktop leaves, the door commits its removal (a new epoch
#     with one member);
#   - the firmware's flash and RAM fit the intercom's budgets.
# and prints the budgets and the time from power-on to the first frame
# heard.
#
# Needs: the root workspace's debug `satsuma-sfu` and `satsuma-headless`
# (the test command's build makes them; CARGO_TARGET_DIR is honoured),
# rustup's thumbv7em-none-eabihf target, qemu-system-arm, defmt-print
# (`cargo xtask setup`), python3, binutils' size. Exits 0 when every check passed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sfu=$target/debug/satsuma-sfu
headless=$target/debug/satsuma-headless
if ! command -v defmt-print >/dev/null; then
    echo "error: defmt-print is missing (it decodes the firmware's log); install it: cargo xtask setup" >&2
    exit 1
fi
for bin in "$sfu" "$headless"; do
    if [ ! -x "$bin" ]; then
        echo "error: $bin is missing; build it first: cargo build -p satsuma-sfu -p satsuma-engine --bins" >&2
        exit 1
    fi
done

cd "$root/firmware-example"
# Without the board's measuring table of live heap blocks (32 KiB of RAM
# that a product would not carry).
cargo build --quiet --release --no-default-features --bin intercom
elf=$PWD/target/thumbv7em-none-eabihf/release/intercom
if nm -C "$elf" | grep -q "blocks::TRACKER"; then
    echo "error: $elf was built with the board's block table; build it with --no-default-features" >&2
    exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# A short idle timeout, so that the link cut below outlasts it: the SFU
# closes the door's link and keeps its seat for the grace period.
SATSUMA_SFU_LIMITS__IDLE_TIMEOUT_MS=3000 \
    "$sfu" --http 127.0.0.1:0 --intercom 127.0.0.1:0 >"$work/sfu.out" 2>"$work/sfu.err" &
pids+=($!)
for _ in $(seq 100); do
    grep -q "listening" "$work/sfu.out" 2>/dev/null && break
    sleep 0.1
done
line=$(head -1 "$work/sfu.out")
http=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' <<<"$line")
intercom=$(sed -n 's/.*intercom=\([^ ]*\).*/\1/p' <<<"$line")
if [ -z "$http" ] || [ -z "$intercom" ]; then
    echo "error: the SFU did not say where it listens: $line" >&2
    exit 1
fi
echo "satsuma-sfu: signalling $http, intercom link $intercom"

room=door-$$
seconds=45
# The door's log is defmt's, on QEMU's standard error: decoded here by
# defmt-print against the ELF, through a FIFO (QEMU's standard output keeps
# the text a panic or fault would print).
mkfifo "$work/defmt"
defmt-print -e "$elf" --log-format '{s}' stdin <"$work/defmt" >"$work/door.log" 2>"$work/defmt-print.err" &
pids+=($!)
timeout --kill-after=10 180 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -nic user,id=lan,model=lan9118,mac=52:54:00:12:34:58 \
    -monitor "unix:$work/monitor,server,nowait" \
    -semihosting-config "enable=on,target=native,arg=intercom,arg=${intercom##*:},arg=$room,arg=500,arg=$seconds" \
    -kernel "$elf" >"$work/door.out" 2>"$work/defmt" &
qemu=$!
pids+=("$qemu")

# The desktop joins once the door has made the room.
for _ in $(seq 600); do
    grep -q "^intercom: epoch 0 " "$work/door.log" 2>/dev/null && break
    if ! kill -0 "$qemu" 2>/dev/null; then break; fi
    sleep 0.1
done
timeout --kill-after=10 90 "$headless" --server "$http" --room "$room" --name Bob \
    --codec pcmu --no-video --tone 660 --seconds 24 >"$work/bob.jsonl" 2>"$work/bob.err" &
bob=$!
pids+=("$bob")

# Once both are in the group, the door's cable is pulled for 7 s (QEMU's
# monitor: `set_link`), past the SFU's 3 s idle timeout, and put back.
for _ in $(seq 300); do
    grep -q "^intercom: epoch 1 " "$work/door.log" 2>/dev/null && break
    sleep 0.1
done
monitor() {
    python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.2)
s.sendall((sys.argv[2] + "\n").encode()); time.sleep(0.3); s.close()' "$work/monitor" "$1"
}
sleep 4
monitor "set_link lan off"
sleep 7
monitor "set_link lan on"
wait "$bob" || {
    echo "error: satsuma-headless failed:" >&2
    tail -20 "$work/bob.err" >&2
}
qemu_status=0
wait "$qemu" || qemu_status=$?

# defmt-print ends with QEMU's standard error.
for _ in $(seq 50); do
    [ -z "$(jobs -pr | grep -x "${pids[1]}")" ] && break
    sleep 0.1
done
echo "--- the door's log (defmt over semihosting, decoded by defmt-print)"
cat "$work/door.log"
if [ -s "$work/door.out" ]; then
    echo "--- the door's standard output (QEMU)"
    cat "$work/door.out"
fi
if [ -s "$work/defmt-print.err" ]; then
    echo "--- defmt-print's errors"
    cat "$work/defmt-print.err"
fi
echo "--- the desktop's last media report"
grep -a '"event":"media"' "$work/bob.jsonl" | tail -1 || true

python3 - "$work/door.log" "$work/bob.jsonl" "$elf" "$qemu_status" <<'EOF'
import json, re, subprocess, sys

door_log, bob_jsonl, elf, qemu_status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
door = open(door_log, encoding="utf-8", errors="replace").read().splitlines()
bob = []
for line in open(bob_jsonl, encoding="utf-8", errors="replace"):
    try:
        bob.append(json.loads(line))
    except ValueError:
        pass
failed = []

def check(ok, what):
    print(("ok      " if ok else "FAILED  ") + what)
    if not ok:
        failed.append(what)

check(qemu_status == 0, f"the firmware ran its time and exited 0 (status {qemu_status})")
check(any(l.startswith("intercom: the SFU's clock:") for l in door), "the door asked the SFU for the time")
door_epochs = {}
for l in door:
    m = re.match(r"intercom: epoch (\d+) safety number ([\d ]+) members (\d+)", l)
    if m:
        door_epochs[int(m.group(1))] = (m.group(2).strip(), int(m.group(3)))
check(door_epochs.get(0, (None, 0))[1] == 1, "the door created the room's group alone (epoch 0, one member)")
bob_epochs = {e["epoch"]: e["safety_number"] for e in bob if e.get("event") == "epoch"}
shared = sorted(set(door_epochs) & set(bob_epochs))
check(bool(shared) and all(door_epochs[e][0] == bob_epochs[e] for e in shared),
      f"the same safety number on the door and the desktop in epochs {shared}")
check(any(door_epochs[e][1] == 2 for e in shared), "an epoch with both of them")

media = [e for e in bob if e.get("event") == "media"]
door_at_bob = [r for r in (media[-1]["received"] if media else []) if r.get("name") == "Door"]
audio = door_at_bob[0]["audio"] if door_at_bob else {}
check(audio.get("opened", 0) >= 250 and audio.get("failed", 1) == 0,
      f"the desktop opened the door's audio: {audio.get('opened')} frames, {audio.get('failed')} failed")
tone = audio.get("tone_hz") or 0
check(abs(tone - 500) <= 5, f"the desktop hears the door's 500 Hz tone ({tone:.1f} Hz)")

heard = [tuple(int(x, 16) if i == 3 else int(x) for i, x in enumerate(m.groups()))
         for m in (re.match(r"intercom: heard leaf (\d+) frames (\d+) failed (\d+) crc ([0-9a-f]+) tone (\d+) Hz", l) for l in door) if m]
full = [h for h in heard if h[1] >= 45]
check(len(full) >= 5 and all(h[2] == 0 and abs(h[4] - 660) <= 5 for h in full),
      f"the door opened the desktop's audio and hears its 660 Hz tone ({len(full)} full seconds, none failed)")
# The cable: the link is lost, and the door comes back (its seat resumed,
# or the room joined afresh) and hears the desktop again.
lost = next((i for i, l in enumerate(door) if l.startswith("intercom: link lost")), None)
back = next((i for i, l in enumerate(door) if lost is not None and i > lost
             and l.startswith("intercom: joined (seat resumed:")), None)
check(lost is not None, "the pulled cable cost the door its link")
check(back is not None, "the door reconnected: " + (door[back] if back is not None else "no"))
after = []
if back is not None:
    after = [m for m in (re.match(r"intercom: heard leaf \d+ frames (\d+) failed (\d+) crc [0-9a-f]+ tone (\d+) Hz", l)
                         for l in door[back:]) if m]
    after = [(int(a), int(b), int(c)) for a, b, c in (m.groups() for m in after)]
check(sum(1 for f, x, hz in after if f >= 45 and x == 0 and abs(hz - 660) <= 5) >= 3,
      f"after reconnecting the door hears the desktop again ({len(after)} reports)")
last = max(door_epochs) if door_epochs else -1
check(last > max(shared or [0]) and door_epochs.get(last, ("", 0))[1] == 1,
      f"the desktop left and the door committed its removal (epoch {last}, one member)")

# Budgets (the issue's): flash = .vector_table + .text + .rodata + .data
# <= 384 KiB; RAM = statics without the unused heap + heap peak + stack
# high-water <= 96 KiB.
sizes = {}
for l in subprocess.run(["size", "-A", elf], capture_output=True, text=True, check=True).stdout.splitlines():
    p = l.split()
    if len(p) >= 2 and p[0].startswith(".") and p[1].isdigit():
        sizes[p[0]] = int(p[1])
flash = sum(sizes.get(s, 0) for s in (".vector_table", ".text", ".rodata", ".data"))
mem = next((re.match(r"intercom: memory: heap peak (\d+) bytes of (\d+), stack high-water (\d+)", l) for l in door
            if l.startswith("intercom: memory:")), None)
first = next((int(m.group(1)) for m in (re.match(r"intercom: first frame heard (\d+) ms", l) for l in door) if m), None)
print(f"flash: {flash} bytes ({flash / 1024:.1f} KiB; .text {sizes.get('.text')}, .rodata {sizes.get('.rodata')}, .data {sizes.get('.data')}); budget 384 KiB")
check(flash <= 384 * 1024, "the firmware's flash is within 384 KiB")
if mem:
    peak, heap, stack = (int(g) for g in mem.groups())
    statics = sizes.get(".data", 0) + sizes.get(".bss", 0) + sizes.get(".uninit", 0) - heap
    ram = statics + peak + stack
    print(f"RAM: {ram} bytes ({ram / 1024:.1f} KiB) = statics {statics} (without the {heap}-byte heap arena) + heap peak {peak} + stack high-water {stack}; budget 96 KiB")
    check(ram <= 96 * 1024, "the firmware's RAM is within 96 KiB (in this 2-member call)")
else:
    check(False, "the firmware printed its memory")
allocs = next((m for m in (re.match(r"intercom: allocations: (\d+) in sending (\d+) audio frames, (\d+) in opening (\d+) received", l) for l in door) if m), None)
if allocs:
    sent_allocs, sent, heard_allocs, heard_frames = (int(g) for g in allocs.groups())
    check(sent_allocs == 0 and sent > 0, f"no allocation in sending {sent} audio frames ({sent_allocs})")
    # A sender's first frame in an epoch may derive its key; any frame
    # more would show as one allocation per frame or more.
    check(heard_allocs * 100 < heard_frames,
          f"allocations in opening {heard_frames} received frames: {heard_allocs} (none per frame)")
else:
    check(False, "the firmware counted its audio path's allocations")
print(f"power-on to the first frame heard: {first} ms (the desktop joined after the door's room existed)")
if failed:
    print(f"{len(failed)} check(s) failed")
    sys.exit(1)
print("intercom in a real call: all checks passed")
EOF

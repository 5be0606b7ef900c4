"""The intercom's budgets, read from its ELF and its log, and the checks'
bookkeeping: shared by the phases of scripts/run-intercom-qemu.sh.

Flash is .vector_table + .text + .rodata + .data (what is written to
flash); RAM is the statics without the heap arena's unused part, plus the
heap's peak, plus the stack's high-water mark.
"""
import json
import re
import subprocess

FLASH_BUDGET = 384 * 1024
# The budget for one member of a 16-member room, and the run's
# gate. Measured: 94.5 KiB (statics 20,236 + heap peak 54,900 + stack
# 21,604); the heap's peak moves by a few hundred bytes between runs.
RAM_BUDGET = 96 * 1024


def sections(elf):
    """Section sizes from binutils' `size -A`."""
    sizes = {}
    out = subprocess.run(["size", "-A", elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 2 and p[0].startswith(".") and p[1].isdigit():
            sizes[p[0]] = int(p[1])
    return sizes


def flash(elf):
    """The flash the firmware takes, and its sections."""
    sizes = sections(elf)
    return sum(sizes.get(s, 0) for s in (".vector_table", ".text", ".rodata", ".data")), sizes


def emulated_flash(elf):
    """Bytes of the emulated flash chip the member's store lives in
    (`STORE_CHIP`): flash on a board, RAM only because QEMU's board has no
    flash controller, so not counted as RAM."""
    out = subprocess.run(["nm", "-S", "-C", elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 4 and p[3].endswith("::STORE_CHIP"):
            return int(p[1], 16)
    return 0


def ram(sizes, arena, heap_peak, stack, flash_chip=0):
    """(total, statics): statics without the heap arena and the emulated
    flash chip, plus the heap's peak and the stack's high-water mark."""
    statics = (sizes.get(".data", 0) + sizes.get(".bss", 0) + sizes.get(".uninit", 0)
               - arena - flash_chip)
    return statics + heap_peak + stack, statics


def final_memory(door):
    """(heap peak, heap arena, stack high-water) over the whole run, from
    the door's last memory line; or None."""
    for line in door:
        m = re.match(r"intercom: memory: heap peak (\d+) bytes of (\d+), stack high-water (\d+)", line)
        if m:
            return tuple(int(g) for g in m.groups())
    return None


def memory_lines(door):
    """Each epoch's memory line: (epoch, members, heap, peak, stack)."""
    out = []
    for line in door:
        m = re.match(r"intercom: memory at epoch (\d+) with (\d+) members: heap (\d+) bytes, "
                     r"peak (\d+), stack high-water (\d+)", line)
        if m:
            out.append(tuple(int(g) for g in m.groups()))
    return out


def read_lines(path):
    """A log's lines (bytes that are not UTF-8 replaced)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def read_events(path):
    """The JSON events of a satsuma-headless run (other lines skipped)."""
    events = []
    for line in read_lines(path):
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


class Checks:
    """Prints each check as it is made and remembers the failed ones."""

    def __init__(self):
        self.failed = []

    def __call__(self, ok, what):
        print(("ok      " if ok else "FAILED  ") + what)
        if not ok:
            self.failed.append(what)

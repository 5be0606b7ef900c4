//! The flash that `satsuma-core` and MLS take on their own: every member
//! operation an intercom uses, linked with LTO and opt-level "s", and
//! nothing else (no printing, no measuring, no flash store). Its `.text`
//! is what the 256 KiB goal is about; `mls-roundtrip` adds its
//! checks and reports on top. It is built for its size and never run:
//! `scripts/run-firmware-qemu.sh` prints its sections.
//!
//! Inputs come through `black_box`, so the compiler keeps every path a
//! message from the network could take.
#![no_std]
#![no_main]

extern crate alloc;

use core::hint::black_box;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use embedded_alloc::LlffHeap;
use satsuma_core::Instant;
use satsuma_core::media::Codec;
use satsuma_core::mls::{MemberInfo, MemoryStore, SatsumaCrypto, Session};

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

const HEAP_SIZE: usize = 64 * 1024;

#[entry]
fn main() -> ! {
    {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: `#[entry]` runs once and this is the only use of
        // `HEAP_MEM`, which the heap owns from here on.
        unsafe { HEAP.init((&raw mut HEAP_MEM) as usize, HEAP_SIZE) }
    }
    let _ = member();
    loop {
        cortex_m::asm::wfi();
    }
}

/// Every operation of a member, on opaque inputs.
fn member() -> Result<(), satsuma_core::mls::SessionError> {
    let now = black_box(Instant::from_micros(0));
    let input: &[u8] = black_box(&[]);
    let seed = black_box([0; 32]);
    let config = satsuma_intercom::intercom_session_config();
    let store = MemoryStore::new();
    let info = MemberInfo::new(black_box("Door"), black_box("intercom"))?;
    let mut session = if black_box(true) {
        Session::create(SatsumaCrypto::from_seed(seed), info, config, store)?
    } else {
        Session::resume(now, SatsumaCrypto::from_seed(seed), config, store)?
    };
    black_box(session.key_package()?);
    session.join(now, input)?;
    black_box(session.process(now, input)?);
    black_box(session.commit(&[input], &[black_box(1)])?);
    black_box(session.self_update()?);
    black_box(session.apply_pending_commit(now)?);
    black_box(session.propose_update()?);
    black_box(session.safety_number()?);
    black_box(session.roster());
    black_box(session.poll_timeout());
    session.handle_timeout(now);
    let mut wire = [0u8; 256];
    let mut out = [0u8; 256];
    black_box(Codec::Pcmu.protect(session.keyring_mut(), input, &mut wire)?);
    black_box(Codec::Pcmu.unprotect(session.keyring_mut(), input, &mut out)?);
    session.leave()
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    cortex_m::asm::udf()
}

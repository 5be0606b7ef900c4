//! How a program on this board ends: [`exit`] when it finished, and the
//! panic, HardFault and default exception handlers when it could not go on.
//! Those print why it stopped over semihosting, then let the binary close
//! its output ([`on_stop`]), and exit QEMU with failure.

use core::cell::Cell;
use core::fmt::{self, Write as _};
use core::panic::PanicInfo;

use cortex_m::interrupt::{self, Mutex};
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hio};

/// Why the program stopped before it finished.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stop<'a> {
    /// It panicked.
    Panic(&'a PanicInfo<'a>),
    /// The processor faulted: where, and the System Control Block's fault
    /// status and address registers.
    HardFault {
        /// The faulting instruction.
        pc: u32,
        /// The link register at the fault.
        lr: u32,
        /// Configurable Fault Status Register.
        cfsr: u32,
        /// HardFault Status Register.
        hfsr: u32,
        /// MemManage Fault Address Register.
        mmfar: u32,
        /// BusFault Address Register.
        bfar: u32,
    },
    /// An exception or interrupt with no handler of its own.
    Unexpected(i16),
}

impl fmt::Display for Stop<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panic(info) => write!(f, "{info}"),
            Self::HardFault {
                pc,
                lr,
                cfsr,
                hfsr,
                mmfar,
                bfar,
            } => write!(
                f,
                "HardFault at pc {pc:#010x} (lr {lr:#010x}): CFSR {cfsr:#010x} HFSR {hfsr:#010x} \
                 MMFAR {mmfar:#010x} BFAR {bfar:#010x}"
            ),
            Self::Unexpected(irqn) => write!(f, "unexpected exception or interrupt {irqn}"),
        }
    }
}

/// Writes what a program prints when it stops early: the reason, and what
/// its own output format needs around it (a summary line, say).
pub type Report = fn(out: &mut dyn fmt::Write, stop: &Stop<'_>);

/// The binary's [`Report`], if it set one.
static REPORT: Mutex<Cell<Option<Report>>> = Mutex::new(Cell::new(None));

/// Sets what the handlers print when the program stops early. Without it
/// they print the reason alone.
pub fn on_stop(report: Report) {
    interrupt::free(|cs| REPORT.borrow(cs).set(Some(report)));
}

/// Ends the program: QEMU exits with 0 when `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host; QEMU's side has a timeout.
    loop {
        cortex_m::asm::wfi();
    }
}

/// Reports `stop` on a fresh semihosting stdout (not `hprintln!`'s, which
/// the fault may have interrupted) and exits with failure.
fn stop(stop: &Stop<'_>) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        match interrupt::free(|cs| REPORT.borrow(cs).get()) {
            Some(report) => report(&mut out, stop),
            None => {
                let _ = writeln!(out, "{stop}");
            }
        }
    }
    exit(false)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    stop(&Stop::Panic(info))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: reading the System Control Block's fault status registers has
    // no side effects, and nothing else runs while the fault is handled.
    let (cfsr, hfsr, mmfar, bfar) = unsafe {
        let scb = &*cortex_m::peripheral::SCB::PTR;
        (
            scb.cfsr.read(),
            scb.hfsr.read(),
            scb.mmfar.read(),
            scb.bfar.read(),
        )
    };
    stop(&Stop::HardFault {
        pc: frame.pc(),
        lr: frame.lr(),
        cfsr,
        hfsr,
        mmfar,
        bfar,
    })
}

/// Every interrupt without a vector of its own comes here (see
/// `interrupts.rs`): the board's handlers first, and any other stops the
/// program.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if !crate::interrupts::dispatch(irqn) {
        stop(&Stop::Unexpected(irqn))
    }
}

//! embassy-time's driver on the board's two CMSDK APB timers: one tick is
//! a microsecond.
//!
//! TIMER0 (0x4000_0000, IRQ 8) counts down from `u32::MAX` at the 25 MHz
//! system clock, over and over; its interrupt at each wrap (every 171.8 s)
//! adds 2³² counts to a software high word, so the time never wraps (a
//! `u32` of wraps lasts 23,000 years). TIMER1 (0x4000_1000, IRQ 9) is the
//! alarm: loaded with the counts until the earliest waker is due, it
//! interrupts when it reaches zero. Between alarms no interrupt runs.
//!
//! Why not SysTick: it is 24 bits wide, so at 25 MHz it wraps every
//! 0.67 s and needs a periodic interrupt to extend it, and it has no
//! compare to serve as an alarm, so a second timer would be needed
//! anyway. The CMSDK timers are 32 bits, QEMU models them (`hw/arm/mps2.c`
//! wires both to the 25 MHz clock), and the board has nothing else for
//! them to do.
//!
//! Wakers wait in `embassy-time-queue-utils`' queue, which keeps its
//! entries in the executor's task headers: no table to size.
//!
//! [`start`] must run before anything asks the time.

use core::cell::{Cell, RefCell};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Waker;

use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

use crate::interrupts::{self, Irq};

/// The free-running counter.
const TIMER0: Timer = Timer(0x4000_0000);
/// The alarm.
const TIMER1: Timer = Timer(0x4000_1000);

/// Timer counts in a tick: 25 MHz down to 1 MHz.
const COUNTS_PER_TICK: u64 = 25;
const _: () = assert!(embassy_time_driver::TICK_HZ * COUNTS_PER_TICK == 25_000_000);

/// The longest the alarm is set for at once (86 s): a later deadline is
/// reached in steps, each alarm setting the next.
const MAX_ALARM_COUNTS: u32 = 1 << 31;

// CTRL.
const CTRL_ENABLE: u32 = 1 << 0;
const CTRL_IRQ_ENABLE: u32 = 1 << 3;
// INTSTATUS (write 1 to clear).
const INT_PENDING: u32 = 1 << 0;

/// A register of a CMSDK APB timer, by its byte offset.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
enum TimerReg {
    /// Enable, interrupt enable.
    Ctrl = 0x0,
    /// The count now.
    Value = 0x4,
    /// What the count restarts from after zero; writing it also sets the
    /// count.
    Reload = 0x8,
    /// The interrupt is pending; write 1 to clear.
    IntStatus = 0xC,
}

/// A CMSDK APB timer, by its base address.
#[derive(Debug, Clone, Copy)]
struct Timer(usize);

impl Timer {
    fn read(self, reg: TimerReg) -> u32 {
        // SAFETY: `self.0` is one of the board's two CMSDK APB timers and
        // `reg` a 4-byte aligned register inside its 4 KiB window, device
        // memory that no Rust object occupies; reads have no side effects.
        unsafe { ptr::with_exposed_provenance::<u32>(self.0 + reg as usize).read_volatile() }
    }

    fn write(self, reg: TimerReg, value: u32) {
        // SAFETY: as in `read`; only this module touches the two timers.
        unsafe {
            ptr::with_exposed_provenance_mut::<u32>(self.0 + reg as usize).write_volatile(value);
        }
    }
}

/// The driver's state, shared with the two timer interrupts.
struct CmsdkTime {
    /// How many times TIMER0 wrapped: the high word of the count.
    wraps: Mutex<Cell<u32>>,
    /// Wakers waiting for a time.
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: CmsdkTime = CmsdkTime {
    wraps: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Starts the clock at zero and unmasks the timers' interrupts. Call it
/// once, before anything asks the time; later calls do nothing.
pub fn start() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    for timer in [TIMER0, TIMER1] {
        timer.write(TimerReg::Ctrl, 0);
        timer.write(TimerReg::IntStatus, INT_PENDING);
    }
    TIMER0.write(TimerReg::Reload, u32::MAX);
    TIMER0.write(TimerReg::Ctrl, CTRL_ENABLE | CTRL_IRQ_ENABLE);
    interrupts::enable(Irq::Timer0);
    interrupts::enable(Irq::Timer1);
}

impl CmsdkTime {
    /// Timer counts (25 MHz) since [`start`].
    fn counts(&self, cs: CriticalSection<'_>) -> u64 {
        let wraps = u64::from(self.wraps.borrow(cs).get());
        let mut value = TIMER0.read(TimerReg::Value);
        if TIMER0.read(TimerReg::IntStatus) & INT_PENDING != 0 {
            // TIMER0 reached zero and its interrupt waits for this
            // critical section to end, so `wraps` is one short. Read the
            // count again, after the flag: back near the top, it is in the
            // next period; still at zero (the period's last count), in
            // this one.
            value = TIMER0.read(TimerReg::Value);
            if value > u32::MAX / 2 {
                return ((wraps + 1) << 32) | u64::from(u32::MAX - value);
            }
        }
        (wraps << 32) | u64::from(u32::MAX - value)
    }

    /// The time in ticks.
    fn ticks(&self, cs: CriticalSection<'_>) -> u64 {
        self.counts(cs) / COUNTS_PER_TICK
    }

    /// Sets the alarm for tick `at`; `false` when `at` has passed already
    /// (then the alarm is off). `u64::MAX` means no alarm.
    fn set_alarm(&self, cs: CriticalSection<'_>, at: u64) -> bool {
        TIMER1.write(TimerReg::Ctrl, 0);
        TIMER1.write(TimerReg::IntStatus, INT_PENDING);
        if at == u64::MAX {
            return true;
        }
        let now = self.ticks(cs);
        if at <= now {
            return false;
        }
        // At least one tick away, so at least 25 counts: never zero, which
        // would stop the timer. Counting from a moment after `now` was
        // read, the alarm can only be late, by the few cycles in between.
        let counts = (at - now).saturating_mul(COUNTS_PER_TICK);
        let counts = u32::try_from(counts).map_or(MAX_ALARM_COUNTS, |c| c.min(MAX_ALARM_COUNTS));
        TIMER1.write(TimerReg::Reload, counts);
        TIMER1.write(TimerReg::Ctrl, CTRL_ENABLE | CTRL_IRQ_ENABLE);
        true
    }

    /// Wakes the wakers that are due and sets the alarm for the next one.
    fn wake_due(&self, cs: CriticalSection<'_>) {
        let mut queue = self.queue.borrow(cs).borrow_mut();
        let mut next = queue.next_expiration(self.ticks(cs));
        while !self.set_alarm(cs, next) {
            next = queue.next_expiration(self.ticks(cs));
        }
    }
}

impl Driver for CmsdkTime {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks(cs))
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let earlier = self.queue.borrow(cs).borrow_mut().schedule_wake(at, waker);
            if earlier {
                self.wake_due(cs);
            }
        });
    }
}

/// TIMER0's interrupt: it wrapped.
pub(crate) fn on_wrap() {
    critical_section::with(|cs| {
        TIMER0.write(TimerReg::IntStatus, INT_PENDING);
        let wraps = DRIVER.wraps.borrow(cs);
        wraps.set(wraps.get().wrapping_add(1));
    });
}

/// TIMER1's interrupt: the alarm went off. It would count down again from
/// the same value; `wake_due` stops it and sets the next one.
pub(crate) fn on_alarm() {
    critical_section::with(|cs| DRIVER.wake_due(cs));
}

//! The network on the microcontroller: QEMU's `mps2-an386` (a Cortex-M4)
//! brings up its LAN9118 under embassy's executor and IP stack, gets an
//! address by DHCP from QEMU's user-mode network, and checks with the host
//! at 10.0.2.2 (QEMU's name for the host's loopback):
//!
//! 1. TCP: 256 KiB of a deterministic pattern, written in 1 KiB chunks to
//!    the host's echo server while the echo is read back and every byte
//!    compared with what was sent.
//! 2. UDP: one datagram to the same port, and its echo.
//!
//! It prints the lease, the throughput, the driver's counters and the
//! stack it used over semihosting, and exits 0 when every check passed;
//! otherwise 1, after saying which check failed and why. Every step has
//! its own timeout.
//!
//! The port comes from the semihosting command line, `net-check PORT`;
//! `scripts/run-net-qemu.sh` starts the echo server and QEMU with it. The
//! stack's random seed comes from the host's `/dev/urandom`.
#![no_std]
#![no_main]

mod echo;
mod failure;

use core::fmt;
use core::future::Future;

use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_net::{Config, Runner, StackResources};
use embassy_time::{Duration, Instant, with_timeout};
use satsuma_board_mps2_an386::lan9118::{self, Buffers};
use satsuma_board_mps2_an386::{self as board, Lan9118, Stop, host};
use static_cell::ConstStaticCell;

use crate::failure::Failure;

/// Sockets the stack holds at once: DHCP's, the TCP and the UDP socket.
const SOCKETS: usize = 3;

/// How long each step may take. QEMU's DHCP server answers at once; the
/// rest is generous for a loaded machine.
const DHCP_TIMEOUT: Duration = Duration::from_secs(20);
const TCP_TIMEOUT: Duration = Duration::from_secs(60);
const UDP_TIMEOUT: Duration = Duration::from_secs(10);

/// The stack's socket table and DHCP state.
static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());

/// The LAN9118 driver's frame buffers.
static NIC_BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());

/// Moves frames between the driver and the stack, for ever.
#[embassy_executor::task]
async fn net(mut runner: Runner<'static, Lan9118<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    board::time::start();
    board::on_stop(report_stop);
    hprintln!("satsuma net-check: a LAN9118 under embassy-net on a Cortex-M4 (QEMU mps2-an386)");
    let outcome = run(spawner).await;
    print_usage();
    match outcome {
        Ok(()) => {
            hprintln!("net-check: passed");
            board::exit(true)
        }
        Err(failure) => {
            hprintln!("net-check: FAILED: {}", failure);
            board::exit(false)
        }
    }
}

/// Every step, in order; the first failure ends the run.
async fn run(spawner: Spawner) -> Result<(), Failure> {
    let mut line = [0u8; 64];
    let port = echo_port(host::command_line(&mut line)?)?;
    let seed = host::seed()?;
    let nic = Lan9118::new(NIC_BUFFERS.try_take().ok_or(Failure::Twice)?)?;
    let [a, b, c, d, e, f] = nic.mac();
    hprintln!(
        "LAN9118 up: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; seed: {} bytes from the host's /dev/urandom",
        a,
        b,
        c,
        d,
        e,
        f,
        host::SEED_LEN
    );

    let [s0, s1, s2, s3, s4, s5, s6, s7, ..] = *seed.expose();
    let stack_seed = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    drop(seed);
    let resources = RESOURCES.try_take().ok_or(Failure::Twice)?;
    let config = Config::dhcpv4(Default::default());
    let (stack, runner) = embassy_net::new(nic, config, resources, stack_seed);
    spawner.spawn(net(runner).map_err(Failure::Spawn)?);

    let asked = Instant::now();
    within("DHCP lease", DHCP_TIMEOUT, stack.wait_config_up()).await?;
    let lease = stack.config_v4().ok_or(Failure::NoLease)?;
    hprintln!(
        "DHCP lease: {} (gateway {}) after {} ms",
        lease.address,
        Gateway(lease.gateway),
        asked.elapsed().as_millis()
    );

    let tcp = within("TCP echo", TCP_TIMEOUT, echo::tcp(stack, port)).await??;
    let ms = tcp.elapsed.as_millis().max(1);
    let bytes = u64::try_from(tcp.bytes).unwrap_or(u64::MAX);
    hprintln!(
        "TCP connect to {}:{}: {} ms",
        echo::HOST,
        port,
        tcp.connect.as_millis()
    );
    hprintln!(
        "TCP echo: {} bytes there and back, every byte checked, in {} ms: {} KiB/s each way",
        tcp.bytes,
        ms,
        bytes * 1000 / 1024 / ms
    );

    let udp = within("UDP round trip", UDP_TIMEOUT, echo::udp(stack, port)).await??;
    hprintln!(
        "UDP round trips: {} bytes to {}:{} and back, checked: first {} µs (send {} of {}), second {} µs",
        udp.bytes,
        echo::HOST,
        port,
        udp.first.as_micros(),
        udp.tries,
        echo::UDP_TRIES,
        udp.second.as_micros()
    );
    Ok(())
}

/// The echo server's port: the command line is `net-check PORT`.
fn echo_port(line: &str) -> Result<u16, Failure> {
    line.split_whitespace()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .filter(|port| *port != 0)
        .ok_or(Failure::NoPort)
}

/// Runs `work` for at most `limit`.
async fn within<T>(
    step: &'static str,
    limit: Duration,
    work: impl Future<Output = T>,
) -> Result<T, Failure> {
    with_timeout(limit, work)
        .await
        .map_err(|_| Failure::TimedOut { step, limit })
}

/// The driver's counters, and the memory the run used.
fn print_usage() {
    let nic = lan9118::stats();
    hprintln!(
        "LAN9118 counters: {} frames in, {} out, {} dropped ({} bad status, {} bad length), {} TX errors, {} FIFO errors, {} interrupts",
        nic.rx_frames,
        nic.tx_frames,
        nic.rx_dropped(),
        nic.rx_bad_status,
        nic.rx_bad_length,
        nic.tx_errors,
        nic.fifo_errors,
        nic.interrupts
    );
    let (stack, stack_size) = board::stack_high_water();
    hprintln!(
        "memory: stack high-water {} of {} bytes; heap {} bytes (net-check allocates nothing: buffers and tasks are static)",
        stack,
        stack_size,
        board::HEAP.top()
    );
}

/// A gateway, or that the lease named none.
struct Gateway(Option<embassy_net::Ipv4Address>);

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, "{address}"),
            None => f.write_str("none"),
        }
    }
}

/// What a panic or fault prints: the same last line as a failed check.
fn report_stop(out: &mut dyn fmt::Write, stop: &Stop<'_>) {
    let _ = writeln!(out, "net-check: FAILED: {stop}");
}

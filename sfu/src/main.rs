//! `satsuma-sfu`: the SFU as a process.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use satsuma_sfu::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Satsuma's selective forwarding unit: forwards end-to-end encrypted media
/// and orders each room's MLS handshake. Settings come from the defaults,
/// then `--config`, then `SATSUMA_SFU_*` variables, then these flags.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML config file (see the README for every setting).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address for signalling, /healthz and /metrics.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Address of the intercom link.
    #[arg(long, conflicts_with = "no_intercom")]
    intercom: Option<SocketAddr>,
    /// No intercom listener.
    #[arg(long)]
    no_intercom: bool,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Record every payload the SFU handles into this file.
    #[arg(long)]
    capture: Option<PathBuf>,
    /// Print the effective settings and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = match Config::load(args.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("satsuma-sfu: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(http) = args.http {
        config.http = http;
    }
    if let Some(intercom) = args.intercom {
        config.intercom = Some(intercom);
    }
    if args.no_intercom {
        config.intercom = None;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    if let Some(capture) = args.capture {
        config.debug.capture = Some(capture);
    }
    if args.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("satsuma-sfu: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match satsuma_sfu::start(config).await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        // Scripts and tests read this line to learn the bound addresses;
        // logs go to stderr. A closed stdout is no reason to stop.
        let mut stdout = std::io::stdout();
        let _ = writeln!(
            stdout,
            "satsuma-sfu listening http={} intercom={}",
            server.http_addr(),
            server
                .intercom_addr()
                .map_or_else(|| "off".to_owned(), |a| a.to_string())
        );
        let _ = stdout.flush();
        wait_for_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

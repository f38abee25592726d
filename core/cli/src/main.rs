//! The `acbench` command: a thin layer over the engine, dataset and language
//! crates. Errors are rendered as miette reports; nothing a user types can
//! make it panic.

// candle allocates a buffer per operation; glibc malloc makes CPU training
// ~1.8x slower than mimalloc (measured on 2-core x86-64; ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod progress;
mod resources;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = cli::Cli::parse();
    init_logging();
    // Unwrapped messages: errors name files, and a path broken across lines
    // can be neither read nor copied. The hook is set once, first thing.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    if let Err(e) = configure_threads(cli.threads) {
        eprintln!("{e:?}");
        return ExitCode::from(2);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ACBENCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Fixes the worker-thread count once, before any thread exists. candle reads
/// `RAYON_NUM_THREADS` on every CPU op (falling back to probing the CPU each
/// time), so the variable is set as well as rayon's global pool.
fn configure_threads(requested: Option<usize>) -> miette::Result<()> {
    let n = match requested {
        Some(0) => miette::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    // SAFETY: called at the top of `main`, before any other thread is spawned
    // (logging is synchronous and the rayon pool is built just below), so no
    // thread can be reading the environment concurrently.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    // An error here means a pool already exists; it then has its own size,
    // which is harmless for correctness.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(())
}

/// Rust ignores SIGPIPE, so `acbench ... | head` would panic on the first
/// write after `head` exits; a command-line tool should just stop, as
/// every Unix tool does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition to its default at the start of
    // main, before any thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // A file size limit (RLIMIT_FSIZE, a quota) then makes the write fail
        // with EFBIG, an error acbench reports, instead of killing it.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

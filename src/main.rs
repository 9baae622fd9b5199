use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use rollguard::cli::{self, Cli};
use rollguard::telemetry;

/// A review allocates for every JSON node; glibc's malloc and free were close
/// to half of its instructions (docs/performance.md). The library leaves the
/// choice to its users: the benchmark and the examples that measure against
/// a floor declare the same allocator, so both sides allocate alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = telemetry::init_with_default(cli.log_format, cli.default_log_filter()) {
        eprintln!("rollguard: {err}");
        return ExitCode::from(cli::EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    };
    // Connections left after the drain bound must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

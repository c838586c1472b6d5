#![forbid(unsafe_code)]
use clap::Parser;

/// mimalloc instead of glibc's allocator: glibc gives each thread that allocates an arena of its
/// own and keeps freed memory there, which cost 3.6 KiB per idle joined connection with history on
/// (docs/PERFORMANCE.md, "Idle memory with history on").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chatgate::config::{Cli, Command, LogFormat, ServeArgs};

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: logs piped to files or collectors stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers == 1 {
        // One core: the current-thread runtime skips cross-thread wake-ups (measured cheaper).
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            b.worker_threads(workers);
        }
        b.enable_all().build()
    }
}

fn serve(args: ServeArgs) -> i32 {
    init_logs(args.log_format);
    let rt = match runtime(args.workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatgate: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(chatgate::app::run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("chatgate: {e}");
            tracing::error!("{e}");
            2
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Migrate(args)) => {
            init_logs(LogFormat::Text);
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("chatgate: {e}");
                    std::process::exit(1);
                }
            };
            match rt.block_on(chatgate::migrate::migrate(&args.database_url)) {
                Ok(applied) => {
                    println!(
                        "migrations applied: {applied:?} (schema at version {})",
                        chatgate::migrate::LATEST
                    );
                    0
                }
                Err(e) => {
                    eprintln!("chatgate migrate: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}

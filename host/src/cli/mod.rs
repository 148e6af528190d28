//! The command line: one module per subcommand, each with its options and `run()`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod approvals;
pub mod apps;
pub mod bench;
pub mod build;
pub mod client;
pub mod db;
pub mod exec;
pub mod executions;
pub mod mcp;
pub mod new;
pub mod peers;
pub mod publish;
pub mod run;
pub mod schedules;
pub mod secrets;
pub mod serve;
pub mod tokens;
pub mod triggers;
pub mod webhooks;

/// Floom runtime: publish WebAssembly apps and run them safely.
#[derive(Debug, Parser)]
#[command(name = "floom", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's help is the doc comment of its arguments struct.
#[derive(Debug, Subcommand)]
#[allow(missing_docs)]
pub enum Command {
    Serve(serve::ServeArgs),
    New(new::NewArgs),
    Build(build::BuildArgs),
    Publish(publish::PublishArgs),
    Run(run::RunArgs),
    Apps(apps::AppsArgs),
    Executions(executions::ExecutionsArgs),
    Approvals(approvals::ApprovalsArgs),
    Tokens(tokens::TokensArgs),
    Secrets(secrets::SecretsArgs),
    Triggers(triggers::TriggersArgs),
    Schedules(schedules::SchedulesArgs),
    Webhooks(webhooks::WebhooksArgs),
    Exec(exec::ExecArgs),
    Mcp(mcp::McpArgs),
    Bench(bench::BenchArgs),
    Db(db::DbArgs),
}

/// Exit status for a command that could not even start: bad arguments, an invalid
/// component, manifest or input. (clap uses the same code for usage errors.)
pub const EXIT_INVALID: u8 = 2;

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Command::Serve(args) = cli.command {
        return match serve::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Exec(args) => exec::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::New(args) => done(new::run(&args)),
            Command::Build(args) => done(build::run(&args)),
            Command::Publish(args) => done(publish::run(args).await),
            Command::Apps(args) => done(apps::run(args).await),
            Command::Executions(args) => done(executions::run(args).await),
            Command::Tokens(args) => done(tokens::run(args).await),
            Command::Secrets(args) => done(secrets::run(args).await),
            Command::Mcp(args) => done(mcp::run(args).await),
            Command::Triggers(args) => done(triggers::run(args).await),
            Command::Schedules(args) => done(schedules::run(args).await),
            Command::Webhooks(args) => done(webhooks::run(args).await),
            Command::Approvals(args) => done(approvals::run(args).await),
            Command::Db(args) => done(db::run(args).await),
            Command::Run(args) => match run::run(args).await {
                Ok(code) => ExitCode::from(code),
                Err(failure) => failure.report(),
            },
            Command::Serve(_) => unreachable!("serve builds its own runtimes"),
        }
    })
}

fn done(result: Result<(), client::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

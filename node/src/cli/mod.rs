//! The `qward` command line: global options, subcommands and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::logging::LogFormat;

pub mod about;
pub mod audit;
pub mod chain;
pub mod consent;
pub mod contacts;
pub mod devnet;
pub mod emergency;
pub mod genesis;
pub mod init;
pub mod keys;
pub mod kme;
pub mod messages;
pub mod passphrase;
pub mod qkd;
pub mod record_view;
pub mod records;
pub mod run;
pub mod status;
pub mod tui;
pub mod tx;
pub mod users;

/// qward: a peer-to-peer node for quantum-hardened telehealth messaging.
///
/// Every hospital, doctor, patient and auditor runs one. Peers agree on keys
/// with simulated BB84 plus X25519 and ML-KEM-768, exchange encrypted health records, and
/// hospitals keep a permissioned proof-of-authority chain of membership,
/// consent, record anchors and key-session audits.
#[derive(Debug, Parser)]
#[command(
    name = "qward",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("QWARD_COMMIT"),
        ", ",
        env!("QWARD_PROFILE"),
        ")"
    ),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The node's data directory (keys, database, config).
    #[arg(long, global = true, env = "QWARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this node's data directory: identity key, config and database.
    Init(init::InitArgs),
    /// Start this node (networking, consensus, sync, control API) until Ctrl-C.
    Run(run::RunArgs),
    /// Start a local devnet of separate qward processes on 127.0.0.1 (or stop one).
    Devnet(devnet::DevnetArgs),
    /// Submit a chain transaction through the running node.
    #[command(subcommand)]
    Tx(tx::TxCommand),
    /// Show a running node's identity, chain height and peers.
    Status(status::QueryArgs),
    /// List the peers a running node is connected to.
    Peers(status::QueryArgs),
    /// Simulate, sweep and benchmark the BB84 key distribution engine.
    #[command(subcommand)]
    Qkd(qkd::QkdCommand),
    /// Verify and inspect the chain in a data directory.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Build a genesis from a spec, or a whole local devnet.
    #[command(subcommand)]
    Genesis(genesis::GenesisCommand),
    /// Open the terminal UI on a running node.
    Tui(tui::TuiArgs),
    /// Send a PHR or a report (FHIR R4 JSON) to a member, encrypted end to end.
    Send(messages::SendArgs),
    /// Forward a received PHR to a doctor, under the patient's consent (hospitals).
    Forward(messages::ForwardArgs),
    /// List received records, show one, or export its FHIR JSON.
    Inbox(messages::InboxArgs),
    /// List sent records and their delivery state.
    Outbox(messages::OutboxArgs),
    /// List agreed keys (never their material), run a key agreement, list sessions.
    Keys(keys::KeysArgs),
    /// Show or change the simulated quantum channel of a link (Eve included).
    #[command(subcommand)]
    Link(keys::LinkCommand),
    /// Grant, revoke or list consent on the chain (patients grant and revoke).
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Change the passphrase that seals this node's data key.
    #[command(subcommand)]
    Passphrase(passphrase::PassphraseCommand),
    /// Erase a record for good (crypto-shredding, put on the chain).
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Break-glass: declare or list emergency access to a patient's records.
    #[command(subcommand)]
    Emergency(emergency::EmergencyCommand),
    /// Show or verify the access log (who read which health record).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Manage the people who use this node's API, with their roles.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// ETSI GS QKD 014: serve agreed keys to local applications, make certificates.
    #[command(subcommand)]
    Kme(kme::KmeCommand),
    /// Names for accounts on this node (`--to st-marys`): add, list, remove.
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// This node's identity, read from its data directory (no node needed).
    #[command(subcommand)]
    Id(contacts::IdCommand),
    /// The settings this data directory's node runs with.
    #[command(subcommand)]
    Config(about::ConfigCommand),
    /// The version, commit and build profile of this binary.
    Version {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `qward completions bash > /etc/bash_completion.d/qward`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for qward and every subcommand into a directory.
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs the command line. A failure is one line on stderr, or with
/// `--json` one JSON object on stdout ([`error_json`]); either way the exit
/// code says what kind of failure it was ([`exit`]).
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((wants_json(&m), Cli::from_arg_matches(&m)?)));
    let (json, cli) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return usage_error(&e, &args),
    };
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Devnet(_) | Command::Tui(_)
    ) {
        exit_quietly_on_a_closed_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code_of(&e);
            if json {
                println!("{}", error_json(error_code_name(code), code, &describe(&e)));
            } else {
                eprintln!("error: {}", describe(&e));
            }
            ExitCode::from(code)
        }
    }
}

/// A progress bar drawn on stderr when it is a terminal, and nowhere
/// otherwise: scripts and `--json` read stdout, which a bar never touches.
pub fn progress_bar(template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Whether the command given asked for `--json`.
fn wants_json(matches: &clap::ArgMatches) -> bool {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    matches!(leaf.try_get_one::<bool>("json"), Ok(Some(true)))
}

/// A command line clap refused: its own report (help and version included),
/// or with `--json` among the arguments, one JSON object.
fn usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    if informational || !json {
        e.exit();
    }
    let message = e.kind().as_str().map_or_else(
        || e.to_string(),
        |kind| {
            let text = e.to_string();
            let detail = text
                .lines()
                .next()
                .unwrap_or(kind)
                .trim_start_matches("error: ");
            detail.to_string()
        },
    );
    println!("{}", error_json("usage", exit::REFUSED, &message));
    ExitCode::from(exit::REFUSED)
}

/// The stable name of an exit code, the `code` of a JSON error.
pub fn error_code_name(exit_code: u8) -> &'static str {
    match exit_code {
        exit::REFUSED => "refused",
        exit::UNREACHABLE => "unreachable",
        exit::TIMEOUT => "timeout",
        _ => "error",
    }
}

/// The one JSON object a failed `--json` command prints: a stable `code`
/// (`error`, `refused`, `unreachable`, `timeout`, or `usage` for a command
/// line that does not parse), the exit status, and the message.
pub fn error_json(code: &str, exit_code: u8, message: &str) -> String {
    serde_json::json!({
        "error": { "code": code, "exit": exit_code, "message": message }
    })
    .to_string()
}

/// The exit codes every command uses (README, "Exit codes").
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Failed: anything else (storage, a file or name this command cannot
    /// use).
    pub const ERROR: u8 = 1;
    /// Refused or invalid: a usage error (clap's own code), a request the
    /// node refused or found invalid, or a check that found a problem (a
    /// verify, an eavesdropper, a failed delivery).
    pub const REFUSED: u8 = 2;
    /// The node could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Something waited for did not happen in time.
    pub const TIMEOUT: u8 = 4;
}

/// The exit code of a command that failed with `e`.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    use jsonrpsee::core::ClientError;
    use qward_core::api::RpcError;
    for cause in e.chain() {
        if cause.downcast_ref::<crate::api::Unreachable>().is_some() {
            return exit::UNREACHABLE;
        }
        if cause.downcast_ref::<crate::api::TimedOut>().is_some() {
            return exit::TIMEOUT;
        }
        match cause.downcast_ref::<ClientError>() {
            Some(ClientError::RequestTimeout) => return exit::TIMEOUT,
            Some(ClientError::Transport(_) | ClientError::RestartNeeded(_)) => {
                return exit::UNREACHABLE;
            }
            Some(ClientError::Call(obj)) => {
                let refused = [
                    RpcError::REFUSED,
                    RpcError::INVALID_PARAMS,
                    RpcError::KME_BAD_REQUEST,
                    RpcError::KME_UNAUTHORIZED,
                ];
                return if refused.contains(&i64::from(obj.code())) {
                    exit::REFUSED
                } else {
                    exit::ERROR
                };
            }
            _ => {}
        }
    }
    exit::ERROR
}

/// An error and its causes on one line, each cause once: a cause whose
/// words the message already carries (an error that prints its source, as
/// `thiserror` messages with `{source}` do) is not repeated.
pub fn describe(e: &anyhow::Error) -> String {
    let mut chain = e.chain();
    let mut out = chain.next().map(cause_text).unwrap_or_default();
    for cause in chain {
        let text = cause_text(cause);
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// One cause for people: a failed API call reads as the node's own message.
fn cause_text(cause: &(dyn std::error::Error + 'static)) -> String {
    match cause.downcast_ref::<jsonrpsee::core::ClientError>() {
        Some(e) => crate::api::error_text(e),
        None => cause.to_string(),
    }
}

/// A command whose output is cut short (`qward ... | head`) ends quietly,
/// with the status a shell expects of a process stopped by SIGPIPE (141),
/// instead of a panic message: Rust ignores SIGPIPE, so a print to a closed
/// pipe fails, and `println!` panics on that failure. (Restoring SIGPIPE's
/// default action would take `unsafe`, which the workspace forbids.) Only
/// for commands that print and exit: the node, the devnet and the TUI keep
/// the default hook.
fn exit_quietly_on_a_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::vault::private_umask();
    crate::logging::init(&cli.log_level, cli.log_format)?;
    match cli.command {
        Command::Init(args) => init::run(args, cli.data_dir),
        Command::Run(args) => run::run(args, cli.data_dir),
        Command::Devnet(args) => devnet::run(args, &cli.log_level),
        Command::Tx(cmd) => tx::run(cmd, cli.data_dir),
        Command::Status(args) => status::status(args, cli.data_dir),
        Command::Peers(args) => status::peers(args, cli.data_dir),
        Command::Qkd(cmd) => qkd::run(cmd),
        Command::Chain(cmd) => chain::run(cmd, cli.data_dir),
        Command::Genesis(cmd) => genesis::run(cmd),
        Command::Tui(args) => tui::run(args, cli.data_dir),
        Command::Send(args) => messages::send(args, cli.data_dir),
        Command::Forward(args) => messages::forward(args, cli.data_dir),
        Command::Inbox(args) => messages::inbox(args, cli.data_dir),
        Command::Outbox(args) => messages::outbox(args, cli.data_dir),
        Command::Keys(args) => keys::keys(args, cli.data_dir),
        Command::Link(cmd) => keys::link(cmd, cli.data_dir),
        Command::Consent(cmd) => consent::run(cmd, cli.data_dir),
        Command::Passphrase(cmd) => passphrase::run(cmd, cli.data_dir),
        Command::Records(cmd) => records::run(cmd, cli.data_dir),
        Command::Emergency(cmd) => emergency::run(cmd, cli.data_dir),
        Command::Audit(cmd) => audit::run(cmd, cli.data_dir),
        Command::Users(cmd) => users::run(cmd, cli.data_dir),
        Command::Kme(cmd) => kme::run(cmd, cli.data_dir),
        Command::Contacts(cmd) => contacts::contacts(cmd, cli.data_dir),
        Command::Id(cmd) => contacts::id(cmd, cli.data_dir),
        Command::Config(cmd) => about::config(cmd, cli.data_dir),
        Command::Version { json } => about::version(json),
        Command::Completions { shell } => about::completions(shell),
        Command::Man { out } => about::man(&out),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Commands that print no result: they run until stopped (`run`, the
    /// TUI, a KME server) or write a script or files for a shell
    /// (`completions`, `man`).
    const NO_JSON: [&str; 5] = ["run", "tui", "kme serve", "completions", "man"];

    /// Every command that runs on its own (a leaf, or one with arguments of
    /// its own beside subcommands), and whether it takes `--json` (its own,
    /// or a parent's global one).
    fn runnable(cmd: &clap::Command, path: &str, inherited: bool, out: &mut Vec<(String, bool)>) {
        let has_args = cmd
            .get_arguments()
            .any(|a| !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version");
        let json = inherited || cmd.get_arguments().any(|a| a.get_id() == "json");
        if !cmd.has_subcommands() || has_args {
            out.push((path.trim().to_string(), json));
        }
        let global_json = cmd
            .get_arguments()
            .any(|a| a.get_id() == "json" && a.is_global_set());
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                let name = format!("{path} {}", sub.get_name());
                runnable(sub, &name, inherited || global_json, out);
            }
        }
    }

    #[test]
    fn every_command_that_prints_a_result_takes_json() {
        let mut all = Vec::new();
        runnable(&super::Cli::command(), "", false, &mut all);
        let missing: Vec<&str> = all
            .iter()
            .filter(|(path, json)| !json && !NO_JSON.contains(&path.as_str()))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(missing.is_empty(), "commands without --json: {missing:?}");
        assert!(all.len() > 40, "{all:?}");
    }
}

//! `qward version` (the build: version, commit, profile), `qward config
//! show` (the settings a node in this data directory runs with: its
//! config.toml with every default filled in, under the same flags and
//! variables as `run`), and the shell completions
//! and man pages made from the command line's own definition.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::datadir::DataDir;

/// The version, the commit and the cargo profile of this binary.
pub fn build_info() -> serde_json::Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("QWARD_COMMIT"),
        "profile": env!("QWARD_PROFILE"),
    })
}

pub fn version(json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", build_info());
    } else {
        println!(
            "qward {} (commit {}, {} build)",
            env!("CARGO_PKG_VERSION"),
            env!("QWARD_COMMIT"),
            env!("QWARD_PROFILE")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration: config.toml with the defaults,
    /// under the `QWARD_*` variables set and the `run` flags given here.
    Show {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        passphrase: crate::vault::PassphraseArgs,
        #[command(flatten)]
        settings: super::run::SettingArgs,
    },
}

pub fn config(cmd: ConfigCommand, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show {
        json,
        passphrase,
        settings,
    } = cmd;
    let dir = DataDir::resolve(data_dir)?;
    let mut config = dir.load_config()?;
    config.apply(&settings.overrides(&passphrase))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        print!("{}", toml::to_string(&config)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the completion script of `shell` for `qward`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "qward", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes `qward.1` and one page per subcommand (`qward-kme-serve.1`, ...)
/// into `out`.
pub fn man(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = <super::Cli as clap::CommandFactory>::command();
    let mut written = 0usize;
    write_pages(&cmd, "qward", "qward", out, &mut written)?;
    println!("{written} man pages in {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` as `<file>.1` (`bin` is how it is typed:
/// `qward records request-erasure`), then its subcommands'.
fn write_pages(
    cmd: &clap::Command,
    file: &str,
    bin: &str,
    out: &std::path::Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let page = cmd
        .clone()
        .display_name(file.to_string())
        .bin_name(bin.to_string());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page).render(&mut bytes)?;
    let path = out.join(format!("{file}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        write_pages(
            sub,
            &format!("{file}-{name}"),
            &format!("{bin} {name}"),
            out,
            written,
        )?;
    }
    Ok(())
}

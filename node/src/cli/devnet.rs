//! `qward devnet`: create (with `qward genesis devnet`) and run a local network
//! of separate `qward` processes on 127.0.0.1, or stop one (`devnet down`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use qward_core::identity::Role;

use crate::devnet;

/// Start a local devnet (created on first use), or stop one with `down`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevnetArgs {
    #[command(subcommand)]
    pub command: Option<DevnetCommand>,
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum DevnetCommand {
    /// Stop a devnet started with --detach.
    Down {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the devnet lives (default: <platform data dir>/qward-devnet).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Hospitals (the validators).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub hospitals: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub doctors: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub patients: u32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub auditors: u32,
    /// First TCP port; node i uses port+i for libp2p and port+100+i for its API.
    #[arg(long, default_value_t = 17400)]
    pub base_port: u16,
    /// Start the nodes in the background and return (stop with `qward devnet down`).
    #[arg(long, conflicts_with = "tui")]
    pub detach: bool,
    /// Open the terminal UI on this node (by name) once the devnet is up.
    #[arg(long, value_name = "NAME")]
    pub tui: Option<String>,
    /// Delete an existing devnet in DIR and create a new one.
    #[arg(long)]
    pub fresh: bool,
    /// Print the running devnet as one JSON object (with --detach, or
    /// before waiting for Ctrl-C).
    #[arg(long, conflicts_with = "tui")]
    pub json: bool,
}

fn default_dir() -> anyhow::Result<PathBuf> {
    Ok(dirs::data_dir()
        .context("no platform data directory; pass --dir")?
        .join("qward-devnet"))
}

pub fn run(args: DevnetArgs, log_level: &str) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(DevnetCommand::Down { dir, json }) => {
            let dir = match dir {
                Some(d) => d,
                None => default_dir()?,
            };
            let n = devnet::down(&dir)?;
            if json {
                println!("{}", serde_json::json!({ "dir": dir, "stopped": n }));
            } else {
                println!("stopped {n} node{}", if n == 1 { "" } else { "s" });
            }
            Ok(ExitCode::SUCCESS)
        }
        None => up(args.up, log_level),
    }
}

fn up(args: UpArgs, log_level: &str) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    if args.fresh && dir.exists() {
        if !devnet::live_pids(&dir)?.is_empty() {
            anyhow::bail!(
                "the devnet in {} is running; stop it first (qward devnet down)",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    if !dir.join("spec.toml").exists() {
        if !args.json {
            println!("creating a devnet in {}", dir.display());
        }
        let opts = qward_genesis::DevnetOptions {
            hospitals: args.hospitals as usize,
            doctors: args.doctors as usize,
            patients: args.patients as usize,
            auditors: args.auditors as usize,
            base_port: args.base_port,
            api_base_port: args.base_port.saturating_add(100),
            ..qward_genesis::DevnetOptions::new(crate::node::clock::now_ms())
        };
        super::genesis::write_devnet(&dir, &opts, None)?;
    }
    let members = devnet::members(&dir)?;
    if members.is_empty() {
        anyhow::bail!(
            "{} holds no devnet nodes; use --fresh to create one",
            dir.display()
        );
    }
    let mut running = devnet::start(&dir, &members, log_level)?;
    let bar = super::progress_bar("starting {bar:20} {pos}/{len} nodes up, {elapsed}");
    let started = devnet::wait_until_ready(
        &members,
        &mut running,
        Duration::from_secs(60),
        &mut |up, total| {
            bar.set_length(total as u64);
            bar.set_position(up as u64);
        },
    );
    bar.finish_and_clear();
    started?;
    if args.json {
        print_json(&dir, &members, args.detach);
    } else {
        print_table(&dir, &members);
    }

    if args.detach {
        running.detach();
        if !args.json {
            println!(
                "\nrunning in the background; stop with: qward devnet down --dir {}",
                dir.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &args.tui {
        let member = members
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("no devnet node named '{name}'"))?;
        let result = attach_tui(&member.dir);
        running.stop(Duration::from_secs(10));
        result?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        println!("\nCtrl-C stops every node.");
    }
    wait_for_ctrl_c(&mut running)?;
    if !args.json {
        println!("stopping the devnet");
    }
    running.stop(Duration::from_secs(10));
    Ok(ExitCode::SUCCESS)
}

fn print_json(dir: &Path, members: &[devnet::Member], detached: bool) {
    let nodes: Vec<_> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "role": m.role.to_string(),
                "listen": m.config.listen,
                "api_port": m.config.api_port,
                "data_dir": m.dir,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "dir": dir, "detached": detached, "nodes": nodes })
    );
}

fn print_table(dir: &Path, members: &[devnet::Member]) {
    println!(
        "\n{:<14} {:<9} {:<28} {:<6}  data dir",
        "node", "role", "p2p", "api"
    );
    for m in members {
        println!(
            "{:<14} {:<9} {:<28} {:<6}  {}",
            m.name,
            m.role,
            m.config.listen.first().map(String::as_str).unwrap_or("-"),
            m.config.api_port,
            m.dir.display()
        );
    }
    let example = members
        .iter()
        .find(|m| m.role == Role::Hospital)
        .unwrap_or(&members[0]);
    println!("\nlogs: {}/<node>/logs/node.log", dir.display());
    println!("try:  qward --data-dir {} status", example.dir.display());
    println!("      qward --data-dir {} tui", example.dir.display());
}

fn wait_for_ctrl_c(running: &mut devnet::Running) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut reported = std::collections::HashSet::new();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick() => {
                    let gone: Vec<String> = running.exited().into_iter().filter(|n| reported.insert(n.clone())).collect();
                    if !gone.is_empty() {
                        eprintln!("warning: {} exited; see logs/node.log", gone.join(", "));
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn attach_tui(dir: &Path) -> anyhow::Result<()> {
    let args = super::tui::TuiArgs {
        api: None,
        cookie: None,
        no_color: false,
        lock_after: None,
    };
    super::tui::run(args, Some(dir.to_path_buf())).map(|_| ())
}

//! `qward devnet`: a local network of separate `qward` processes on 127.0.0.1,
//! supervised from one terminal (Ctrl-C stops them all) or in the background
//! (`qward devnet down` stops them).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use qward_core::identity::Role;

use crate::config::Config;
use crate::datadir::DataDir;

/// The file that records the processes of a running devnet.
pub const PID_FILE: &str = "devnet.pids";

/// One node of a devnet, as found in its data directory.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub dir: PathBuf,
    pub config: Config,
}

/// Finds the members of the devnet in `dir`: every subdirectory with a
/// `config.toml`, hospitals first, then by name.
pub fn members(dir: &Path) -> anyhow::Result<Vec<Member>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir)
        .with_context(|| format!("cannot read devnet directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let dd = DataDir::new(&path);
        if !path.is_dir() || !dd.config_file().exists() {
            continue;
        }
        let config = dd.load_config()?;
        out.push(Member {
            name: config.name.clone(),
            role: config.role,
            dir: path,
            config,
        });
    }
    out.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    Ok(out)
}

/// A started devnet: the child processes, stopped on drop.
#[derive(Debug)]
pub struct Running {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

/// Starts one `qward run` process per member, logging to `<member>/logs/node.log`.
pub fn start(dir: &Path, members: &[Member], log_level: &str) -> anyhow::Result<Running> {
    if let Some(live) = live_pids(dir)?.first() {
        bail!(
            "a devnet is already running in {} (pid {}); stop it with `qward devnet down --dir {}`",
            dir.display(),
            live.0,
            dir.display()
        );
    }
    let exe = std::env::current_exe().context("cannot find the qward executable")?;
    let mut running = Running {
        dir: dir.to_path_buf(),
        children: Vec::new(),
    };
    for m in members {
        let logs = DataDir::new(&m.dir).logs_dir();
        fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("node.log"))
            .with_context(|| format!("cannot open the log of {}", m.name))?;
        let child = Command::new(&exe)
            .arg("--data-dir")
            .arg(&m.dir)
            .arg("--log-level")
            .arg(log_level)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", m.name))?;
        running.children.push((m.name.clone(), child));
    }
    running.write_pid_file()?;
    Ok(running)
}

impl Running {
    fn write_pid_file(&self) -> anyhow::Result<()> {
        let mut f = fs::File::create(self.dir.join(PID_FILE))
            .context("cannot write the devnet pid file")?;
        for (name, child) in &self.children {
            writeln!(f, "{} {}", child.id(), name)?;
        }
        Ok(())
    }

    /// Names of members whose process has exited.
    pub fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|(name, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| name.clone()))
            .collect()
    }

    /// Leaves the processes running (for `--detach`).
    pub fn detach(mut self) {
        self.children.clear();
    }

    /// Stops every process: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let pids: Vec<u32> = self.children.iter().map(|(_, c)| c.id()).collect();
        terminate(&pids, grace);
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
        self.children.clear();
        let _ = fs::remove_file(self.dir.join(PID_FILE));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// Sends SIGTERM to each pid, waits up to `grace` for them to exit, then SIGKILLs the rest.
pub fn terminate(pids: &[u32], grace: Duration) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in pids {
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie child still "exists"; treat it as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The devnet processes from the pid file that are still alive and are
/// really qward processes of this devnet (a pid may have been reused).
pub fn live_pids(dir: &Path) -> anyhow::Result<Vec<(u32, String)>> {
    let text = match fs::read_to_string(dir.join(PID_FILE)) {
        Ok(t) => t,
        Err(_) => return Ok(Vec::new()),
    };
    let dir_text = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    Ok(text
        .lines()
        .filter_map(|l| {
            let (pid, name) = l.split_once(' ')?;
            let pid: u32 = pid.parse().ok()?;
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (alive(pid) && cmdline.contains("qward") && cmdline.contains(&dir_text))
                .then(|| (pid, name.to_string()))
        })
        .collect())
}

/// `qward devnet down`: stops a devnet started in the background.
pub fn down(dir: &Path) -> anyhow::Result<usize> {
    if !dir.is_dir() {
        bail!(
            "no devnet in {}: the directory does not exist (--dir names the one `qward devnet` used)",
            dir.display()
        );
    }
    let live = live_pids(dir)?;
    let pids: Vec<u32> = live.iter().map(|(p, _)| *p).collect();
    terminate(&pids, Duration::from_secs(15));
    let _ = fs::remove_file(dir.join(PID_FILE));
    Ok(pids.len())
}

/// Waits until every member's API port accepts connections, or `timeout`.
pub fn wait_until_ready(
    members: &[Member],
    running: &mut Running,
    timeout: Duration,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut waiting: Vec<&Member> = members.iter().collect();
    while !waiting.is_empty() {
        progress(members.len() - waiting.len(), members.len());
        let exited = running.exited();
        if !exited.is_empty() {
            bail!(
                "{} exited during start-up; see its logs/node.log",
                exited.join(", ")
            );
        }
        waiting.retain(|m| std::net::TcpStream::connect(("127.0.0.1", m.config.api_port)).is_err());
        if Instant::now() > deadline {
            let names: Vec<&str> = waiting.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "{} did not open their API within {timeout:?}; see their logs/node.log",
                names.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    progress(members.len(), members.len());
    Ok(())
}

//! `qward qkd`: simulate BB84 sessions, sweep parameters into CSV and PNG
//! plots, benchmark the engine, and reproduce the seed paper's figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use plotters::prelude::*;
use qward_core::qkd::amplify::toeplitz_hash;
use qward_core::qkd::cascade::CascadeConfig;
use qward_core::qkd::paper::{StatisticalRule, detection_curve, paper_observations};
use qward_core::qkd::qubit::QubitBatch;
use qward_core::qkd::sift::{matching_bases, sifted_key};
use qward_core::qkd::sweep::{
    DistancePoint, FINITE_KEY_BLOCKS, cascade_point, distance_sweep, eve_sweep,
};
use qward_core::qkd::{
    Channel, ChannelParams, PackedBits, ProtocolParams, SimulationParams, Source, simulate,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum QkdCommand {
    /// Run simulated BB84 sessions (one line per round).
    Simulate(SimulateArgs),
    /// Sweep distance, Eve's fraction or the QBER; write CSV files and PNG plots.
    Sweep(SweepArgs),
    /// Measure qubits per second, Cascade efficiency and throughput, Toeplitz throughput.
    Bench(BenchArgs),
    /// Reproduce the seed paper's figures (CSV and PNG), paper rule beside qward's rule.
    Paper(PaperArgs),
}

/// The physical channel.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Fibre length in km.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub distance_km: f64,
    /// Fibre attenuation in dB/km.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub loss_db_per_km: f64,
    /// Detector efficiency (0 to 1].
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub detector_efficiency: f64,
    /// Dark-count probability per detector and pulse.
    #[arg(long, default_value_t = 1e-6, allow_negative_numbers = true)]
    pub dark_count_prob: f64,
    /// Misalignment error probability.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub misalignment: f64,
    /// Use weak coherent pulses with this mean photon number (default: single photons).
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<f64>,
}

impl ChannelArgs {
    fn params(&self) -> anyhow::Result<ChannelParams> {
        let p = ChannelParams {
            source: match self.mu {
                Some(mean_photon_number) => Source::WeakCoherent { mean_photon_number },
                None => Source::SinglePhoton,
            },
            distance_km: self.distance_km,
            loss_db_per_km: self.loss_db_per_km,
            detector_efficiency: self.detector_efficiency,
            dark_count_prob: self.dark_count_prob,
            misalignment: self.misalignment,
        };
        p.validate()?;
        Ok(p)
    }
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Qubits Alice sends per round.
    #[arg(long, default_value_t = 1_000_000)]
    pub qubits: u64,
    #[command(flatten)]
    pub channel: ChannelArgs,
    /// Fraction of qubits Eve intercepts and resends (0 to 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub eve: f64,
    /// Number of rounds.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seed of the simulation (deterministic); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Abort tolerance on the observed QBER (its upper bound sets the key length).
    #[arg(long, default_value_t = 0.11, allow_negative_numbers = true)]
    pub max_qber: f64,
    /// Fraction of the sifted key sampled for estimation.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub sample_fraction: f64,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepOver {
    Distance,
    Eve,
    Qber,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// What to sweep.
    #[arg(long, value_enum)]
    pub over: SweepOver,
    /// Output directory for CSV and PNG files.
    #[arg(long)]
    pub out: PathBuf,
    /// Qubits per simulated run (distance and eve sweeps).
    #[arg(long, default_value_t = 1_000_000)]
    pub qubits: u64,
    #[command(flatten)]
    pub channel: ChannelArgs,
    /// Largest distance of the distance sweep, km.
    #[arg(long, default_value_t = 150.0)]
    pub max_distance_km: f64,
    /// Points of the sweep.
    #[arg(long, default_value_t = 16)]
    pub points: u32,
    /// Blocks per point of the QBER (Cascade) sweep.
    #[arg(long, default_value_t = 50)]
    pub trials: u64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object naming the files written.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Blocks per Cascade measurement.
    #[arg(long, default_value_t = 20)]
    pub trials: u64,
}

#[derive(Debug, Args)]
pub struct PaperArgs {
    /// Output directory for CSV and PNG files.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest number of compared bits in the detection curve.
    #[arg(long, default_value_t = 40)]
    pub max_compared: u64,
    /// Monte Carlo trials per point of the detection curve.
    #[arg(long, default_value_t = 2000)]
    pub trials: u64,
    /// Print one JSON object: the files written and the observations.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: QkdCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        QkdCommand::Simulate(a) => run_simulate(&a),
        QkdCommand::Sweep(a) => run_sweep(&a),
        QkdCommand::Bench(a) => run_bench(&a),
        QkdCommand::Paper(a) => run_paper(&a),
    }
}

fn check_fraction(name: &str, v: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&v) {
        bail!("--{name} must be between 0 and 1, not {v}");
    }
    Ok(())
}

fn run_simulate(a: &SimulateArgs) -> anyhow::Result<ExitCode> {
    check_fraction("eve", a.eve)?;
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let params = SimulationParams {
        protocol: ProtocolParams {
            qubits: a.qubits,
            sample_fraction: a.sample_fraction,
            max_qber: a.max_qber,
            ..ProtocolParams::default()
        },
        channel: a.channel.params()?,
        eve_fraction: a.eve,
    };
    params
        .protocol
        .validate()
        .context("bad protocol parameters")?;
    let seed = a.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut all_ok = true;
    for round in 1..=a.rounds {
        let run = simulate(&params, &mut rng)?;
        let r = &run.report;
        let keys_ok = r.aborted || run.keys_equal;
        all_ok &= keys_ok;
        if a.json {
            let line = json!({
                "round": round,
                "seed": seed,
                "qubits_sent": r.qubits_sent,
                "detected": r.detected,
                "sifted": r.sifted,
                "sample_size": r.sample_size,
                "sample_errors": r.sample_errors,
                "qber": r.qber,
                "qber_upper_bound": r.qber_upper_bound,
                "leaked_bits": r.leaked_bits,
                "cascade_parity_bits": r.cascade_parity_bits,
                "corrected_bits": run.bob_report.corrected_bits,
                "final_key_bits": r.final_key_bits,
                "eve_detected": r.eve_detected,
                "qubits_intercepted": run.qubits_intercepted,
                "aborted": r.aborted,
                "abort_reason": r.abort_reason.as_ref().map(|x| x.to_string()),
                "keys_equal": run.keys_equal,
            });
            println!("{line}");
        } else {
            let mut s = format!(
                "round {round}: sent {} detected {} sifted {} sample {} QBER {:.3}% (bound {:.3}%) leaked {} key {} bits",
                r.qubits_sent,
                r.detected,
                r.sifted,
                r.sample_size,
                r.qber * 100.0,
                r.qber_upper_bound * 100.0,
                r.leaked_bits,
                r.final_key_bits
            );
            match &r.abort_reason {
                Some(reason) => write!(s, ", ABORTED: {reason}")?,
                None => write!(
                    s,
                    ", keys equal: {}",
                    if run.keys_equal { "yes" } else { "NO" }
                )?,
            }
            write!(
                s,
                ", eve detected: {}",
                if r.eve_detected { "yes" } else { "no" }
            )?;
            println!("{s}");
        }
    }
    if !all_ok {
        eprintln!("error: a round finished with unequal keys (seed {seed})");
        return Ok(ExitCode::from(super::exit::REFUSED));
    }
    Ok(ExitCode::SUCCESS)
}

fn linspace(lo: f64, hi: f64, points: u32) -> Vec<f64> {
    let n = points.max(2);
    (0..n)
        .map(|i| lo + (hi - lo) * f64::from(i) / f64::from(n - 1))
        .collect()
}

fn run_sweep(a: &SweepArgs) -> anyhow::Result<ExitCode> {
    let mut written = Vec::new();
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let base = SimulationParams {
        protocol: ProtocolParams {
            qubits: a.qubits,
            ..ProtocolParams::default()
        },
        channel: a.channel.params()?,
        eve_fraction: 0.0,
    };
    base.protocol
        .validate()
        .context("bad protocol parameters")?;
    match a.over {
        SweepOver::Distance => {
            if !(a.max_distance_km > 0.0 && a.max_distance_km.is_finite()) {
                bail!(
                    "--max-distance-km must be positive, not {}",
                    a.max_distance_km
                );
            }
            // Point by point (the same draws as one call) for the bar.
            let bar = sweep_bar(u64::from(a.points));
            let mut pts = Vec::new();
            for d in linspace(0.0, a.max_distance_km, a.points) {
                pts.extend(distance_sweep(&base, &[d], &mut rng)?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            let mut csv = String::from(
                "distance_km,qubits_sent,final_key_bits,key_rate,qber,aborted,theory_asymptotic,\
                 theory_decoy,theory_gllp,plob",
            );
            for b in FINITE_KEY_BLOCKS {
                write!(csv, ",theory_finite_{b}")?;
            }
            csv.push('\n');
            for p in &pts {
                write!(
                    csv,
                    "{},{},{},{},{},{},{},{},{},{}",
                    p.distance_km,
                    p.qubits_sent,
                    p.final_key_bits,
                    p.key_rate,
                    p.qber,
                    p.aborted,
                    p.theory_asymptotic,
                    p.theory_decoy,
                    p.theory_gllp,
                    p.plob
                )?;
                for t in &p.theory_finite {
                    write!(csv, ",{t}")?;
                }
                csv.push('\n');
            }
            write_file(&mut written, &a.out.join("key_rate_vs_distance.csv"), &csv)?;
            let mut series = vec![Series::points(
                format!("simulated, {} pulses", a.qubits),
                pts.iter().map(|p| (p.distance_km, p.key_rate)).collect(),
            )];
            series.push(Series::line(
                "asymptotic, this source: 1-2h(Q) (GLLP for a laser)",
                pts.iter()
                    .map(|p| (p.distance_km, p.theory_asymptotic))
                    .collect(),
            ));
            for (i, b) in FINITE_KEY_BLOCKS.iter().enumerate() {
                series.push(Series::line(
                    format!("finite key, N = {b}"),
                    pts.iter()
                        .map(|p| (p.distance_km, p.theory_finite[i]))
                        .collect(),
                ));
            }
            let curve = |label: &str, f: fn(&DistancePoint) -> f64| {
                Series::line(label, pts.iter().map(|p| (p.distance_km, f(p))).collect())
            };
            series.push(curve("laser, vacuum + weak decoy (asymptotic)", |p| {
                p.theory_decoy
            }));
            series.push(curve("laser, no decoy: GLLP (asymptotic)", |p| {
                p.theory_gllp
            }));
            series.push(curve("PLOB bound -log2(1 - eta)", |p| p.plob));
            plot(
                &mut written,
                &a.out.join("key_rate_vs_distance.png"),
                "Secret key rate against distance",
                "distance (km)",
                "secret bits per pulse",
                &series,
                true,
            )?;
        }
        SweepOver::Eve => {
            let bar = sweep_bar(u64::from(a.points));
            let mut pts = Vec::new();
            for f in linspace(0.0, 1.0, a.points) {
                pts.extend(eve_sweep(&base, &[f], &mut rng)?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            let mut csv = String::from(
                "eve_fraction,qber,qber_upper_bound,theory_qber,theory_p_over_4,eve_detected,final_key_bits\n",
            );
            for p in &pts {
                writeln!(
                    csv,
                    "{},{},{},{},{},{},{}",
                    p.eve_fraction,
                    p.qber,
                    p.qber_upper_bound,
                    p.theory_qber,
                    p.eve_fraction / 4.0,
                    p.eve_detected,
                    p.final_key_bits
                )?;
            }
            write_file(&mut written, &a.out.join("qber_vs_eve.csv"), &csv)?;
            let series = vec![
                Series::points(
                    "simulated (sample QBER)",
                    pts.iter().map(|p| (p.eve_fraction, p.qber)).collect(),
                ),
                Series::line(
                    "channel model",
                    pts.iter()
                        .map(|p| (p.eve_fraction, p.theory_qber))
                        .collect(),
                ),
                Series::line(
                    "p/4 (ideal channel)",
                    pts.iter()
                        .map(|p| (p.eve_fraction, p.eve_fraction / 4.0))
                        .collect(),
                ),
            ];
            plot(
                &mut written,
                &a.out.join("qber_vs_eve.png"),
                "QBER against Eve's intercept fraction",
                "fraction intercepted",
                "QBER",
                &series,
                false,
            )?;
        }
        SweepOver::Qber => {
            let cfg = CascadeConfig::default();
            let mut csv =
                String::from("qber,block_bits,trials,efficiency,frame_error_rate,mean_rounds\n");
            let mut series = Vec::new();
            let bar = sweep_bar(2 * u64::from(a.points));
            for n in [10_000usize, 100_000] {
                let mut line = Vec::new();
                for q in linspace(0.01, 0.10, a.points) {
                    let p = cascade_point(q, n, a.trials, &cfg, &mut rng)?;
                    bar.inc(1);
                    writeln!(
                        csv,
                        "{},{},{},{},{},{}",
                        p.qber,
                        p.block_bits,
                        p.trials,
                        p.efficiency,
                        p.frame_error_rate,
                        p.mean_rounds
                    )?;
                    line.push((q, p.efficiency));
                }
                series.push(Series::line(format!("Cascade, n = {n}"), line));
            }
            bar.finish_and_clear();
            write_file(
                &mut written,
                &a.out.join("cascade_efficiency_vs_qber.csv"),
                &csv,
            )?;
            plot(
                &mut written,
                &a.out.join("cascade_efficiency_vs_qber.png"),
                "Cascade efficiency f = leaked / (n h(Q))",
                "QBER",
                "efficiency",
                &series,
                false,
            )?;
        }
    }
    report_written(&a.out, &written, a.json);
    Ok(ExitCode::SUCCESS)
}

fn run_bench(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(1);
    // Qubits: prepare, transmit (default channel), measure, sift; 8 batches of 2^20.
    let n = 1 << 20;
    let mut ch = Channel::new(ChannelParams::default())?;
    let start = Instant::now();
    let mut sifted = 0;
    for _ in 0..8 {
        let (batch, rec) = QubitBatch::prepare(n, &mut rng)?;
        let m = ch.transmit(batch, None, &mut rng).measure(&mut rng);
        let bob_bases = m.bases.select(&m.detected)?;
        let matches = matching_bases(&rec.bases, &m.detected, &bob_bases)?;
        sifted += sifted_key(&rec.values, &m.detected, &matches)?.len();
        // Bob's sifted key is computed too (same length), as in a real run.
        std::hint::black_box(sifted_key(&m.results, &m.detected, &matches)?);
    }
    let qubits_per_s = 8.0 * n as f64 / start.elapsed().as_secs_f64();
    let mut cascade = Vec::new();
    let cfg = CascadeConfig::default();
    for block in [10_000usize, 100_000] {
        for q in [0.01, 0.02, 0.05, 0.08] {
            let t = Instant::now();
            let p = cascade_point(q, block, a.trials, &cfg, &mut rng)?;
            let secs = t.elapsed().as_secs_f64();
            cascade.push(json!({
                "block_bits": block,
                "qber": q,
                "efficiency": p.efficiency,
                "frame_error_rate": p.frame_error_rate,
                "mean_rounds": p.mean_rounds,
                // Includes making the noisy key pairs; criterion isolates Cascade.
                "throughput_mbit_per_s": (block as f64 * a.trials as f64) / secs / 1e6,
            }));
        }
    }
    let tn = 1 << 20;
    let x = PackedBits::random(tn, &mut rng);
    let s = PackedBits::random(tn + tn / 2 - 1, &mut rng);
    let t = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        std::hint::black_box(toeplitz_hash(&s, &x, tn / 2)?);
    }
    let toeplitz = f64::from(reps) * tn as f64 / t.elapsed().as_secs_f64() / 1e6;
    let out = json!({
        "qubits_per_second": qubits_per_s,
        "sifted_bits": sifted,
        "cascade": cascade,
        "toeplitz_mbit_per_s_1mbit_block": toeplitz,
    });
    if a.json {
        println!("{out}");
    } else {
        println!("simulated qubits per second: {:.1} M", qubits_per_s / 1e6);
        for c in &cascade {
            println!(
                "cascade n={} qber={}: efficiency {:.4}, frame error rate {:.3}, {:.1} Mbit/s",
                c["block_bits"],
                c["qber"],
                c["efficiency"].as_f64().unwrap_or(0.0),
                c["frame_error_rate"].as_f64().unwrap_or(0.0),
                c["throughput_mbit_per_s"].as_f64().unwrap_or(0.0)
            );
        }
        println!("toeplitz 1 Mbit -> 512 kbit: {toeplitz:.1} Mbit/s");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_paper(a: &PaperArgs) -> anyhow::Result<ExitCode> {
    let mut written = Vec::new();
    if a.max_compared == 0 || a.trials == 0 {
        bail!("--max-compared and --trials must be at least 1");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut rng = StdRng::seed_from_u64(a.seed);
    let rule = StatisticalRule::default();
    let obs = paper_observations(&rule, &mut rng)?;
    let mut csv = String::from(
        "observation,eve_present,qubits,matching_bases,errors,error_rate,paper_detected,qward_detected\n",
    );
    for o in &obs {
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            o.observation,
            o.eve_present,
            o.qubits,
            o.matching_bases,
            o.errors,
            o.error_rate,
            o.paper_detected,
            o.qward_detected
        )?;
    }
    write_file(&mut written, &a.out.join("paper_observations.csv"), &csv)?;
    let x = |f: &dyn Fn(&qward_core::qkd::paper::Observation) -> f64| -> Vec<(f64, f64)> {
        obs.iter()
            .map(|o| (f64::from(o.observation), f(o)))
            .collect()
    };
    plot(
        &mut written,
        &a.out.join("fig1_matching_bases.png"),
        "Matching bases per observation (20 qubits)",
        "observation",
        "matching bases",
        &[Series::points(
            "matching bases",
            x(&|o| o.matching_bases as f64),
        )],
        false,
    )?;
    plot(
        &mut written,
        &a.out.join("fig2_error_rate.png"),
        "Error rate per observation (Eve in 1, 5, 8, 10, 12)",
        "observation",
        "error rate",
        &[
            Series::points("error rate", x(&|o| o.error_rate)),
            Series::line("paper threshold 50%", vec![(1.0, 0.5), (15.0, 0.5)]),
            Series::line(
                "intercept-resend theory 25%",
                vec![(1.0, 0.25), (15.0, 0.25)],
            ),
        ],
        false,
    )?;
    plot(
        &mut written,
        &a.out.join("fig3_eve_detected.png"),
        "Eavesdropper detected (1 = yes): paper rule vs qward rule",
        "observation",
        "detected",
        &[
            Series::points("Eve present", x(&|o| if o.eve_present { 1.0 } else { 0.0 })),
            Series::points(
                "paper rule (>= 50%)",
                x(&|o| if o.paper_detected { 0.95 } else { 0.05 }),
            ),
            Series::points(
                "qward rule (binomial test)",
                x(&|o| if o.qward_detected { 0.9 } else { 0.1 }),
            ),
        ],
        false,
    )?;
    let curve = detection_curve(a.max_compared, a.trials, &rule, &mut rng)?;
    let mut csv = String::from(
        "compared_bits,theory_any_error,theory_paper_rule,theory_statistical,simulated_statistical,simulated_paper_rule\n",
    );
    for p in &curve {
        writeln!(
            csv,
            "{},{},{},{},{},{}",
            p.compared_bits,
            p.theory_any_error,
            p.theory_paper_rule,
            p.theory_statistical,
            p.simulated_statistical,
            p.simulated_paper_rule
        )?;
    }
    write_file(&mut written, &a.out.join("detection_probability.csv"), &csv)?;
    let c = |f: &dyn Fn(&qward_core::qkd::paper::DetectionPoint) -> f64| -> Vec<(f64, f64)> {
        curve
            .iter()
            .map(|p| (p.compared_bits as f64, f(p)))
            .collect()
    };
    plot(
        &mut written,
        &a.out.join("fig4_detection_probability.png"),
        "P(detect full intercept-resend) vs compared bits",
        "compared bits",
        "probability",
        &[
            Series::line("1 - (3/4)^k (any error)", c(&|p| p.theory_any_error)),
            Series::line("qward rule, theory", c(&|p| p.theory_statistical)),
            Series::points("qward rule, simulated", c(&|p| p.simulated_statistical)),
            Series::line("paper rule (>= 50%), theory", c(&|p| p.theory_paper_rule)),
            Series::points("paper rule, simulated", c(&|p| p.simulated_paper_rule)),
        ],
        false,
    )?;
    if a.json {
        println!(
            "{}",
            json!({ "dir": a.out, "files": written, "observations": obs })
        );
        return Ok(ExitCode::SUCCESS);
    }
    for o in &obs {
        println!(
            "observation {:2}: eve {:3}  matching {:2}  errors {:2}  rate {:5.1}%  paper rule {:3}  qward rule {:3}",
            o.observation,
            yes(o.eve_present),
            o.matching_bases,
            o.errors,
            o.error_rate * 100.0,
            yes(o.paper_detected),
            yes(o.qward_detected)
        );
    }
    report_written(&a.out, &written, false);
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The bar of a sweep's points (on a terminal only).
fn sweep_bar(points: u64) -> indicatif::ProgressBar {
    let bar = super::progress_bar("sweeping {bar:30} {pos}/{len} points, {eta} left");
    bar.set_length(points);
    bar
}

/// Writes `text` to `path` and notes the file among those written.
fn write_file(written: &mut Vec<PathBuf>, path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path.to_path_buf());
    Ok(())
}

/// What a sweep or the paper's figures wrote: the directory and each file,
/// as one line, or with `--json` one object.
fn report_written(out: &Path, written: &[PathBuf], json: bool) {
    if json {
        println!("{}", json!({ "dir": out, "files": written }));
    } else {
        println!("wrote {}", out.display());
    }
}

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    line: bool,
}

impl Series {
    fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            line: true,
        }
    }
    fn points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            line: false,
        }
    }
}

/// The TrueType font for plot text (Debian: fonts-dejavu-core).
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let env = std::env::var("QWARD_PLOT_FONT").ok();
            let paths = env.iter().map(String::as_str).chain(FONT_PATHS);
            for p in paths {
                if let Ok(bytes) = std::fs::read(p) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                        .map_err(|_| format!("{p} is not a usable TrueType font"));
                }
            }
            Err("no font for plots: install fonts-dejavu-core or set QWARD_PLOT_FONT to a .ttf file".into())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn plot(
    written: &mut Vec<PathBuf>,
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    log_y: bool,
) -> anyhow::Result<()> {
    register_font()?;
    let pts = series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        // PLOB is infinite at 0 km: what cannot be drawn is skipped.
        if !y.is_finite() || (log_y && y <= 0.0) {
            continue;
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 1e-6, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let draw = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let colour = |i: usize| Palette99::pick(i).to_rgba();
    macro_rules! body {
        ($chart:expr, $map:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .y_desc(ylabel)
                .y_label_formatter(&|v: &f64| {
                    if log_y {
                        format!("{v:.0e}")
                    } else {
                        format!("{v}")
                    }
                })
                .draw()
                .map_err(|e| draw(&e))?;
            for (i, s) in series.iter().enumerate() {
                let c = colour(i);
                let data: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|&(_, y)| y.is_finite() && $map(y))
                    .collect();
                if s.line {
                    chart
                        .draw_series(LineSeries::new(data, c.stroke_width(2)))
                        .map_err(|e| draw(&e))?
                        .label(s.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                        });
                } else {
                    chart
                        .draw_series(data.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                        .map_err(|e| draw(&e))?
                        .label(s.label.clone())
                        .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw(&e))?;
        }};
    }
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    if log_y {
        let chart = builder
            .build_cartesian_2d(x0..x1, (y0.max(1e-9) / 2.0..y1 * 2.0).log_scale())
            .map_err(|e| draw(&e))?;
        body!(chart, |y: f64| y > 0.0);
    } else {
        let pad = (y1 - y0).abs().max(1e-9) * 0.08;
        let chart = builder
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| draw(&e))?;
        body!(chart, |_y: f64| true);
    }
    root.present().map_err(|e| draw(&e))?;
    written.push(path.to_path_buf());
    Ok(())
}

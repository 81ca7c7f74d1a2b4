//! `tracer`: where did a scheduled job's trigger path break?

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use tracer::{check, record, Format};

/// Exit codes (also in --help).
const EXIT_CLEAN: u8 = 0;
const EXIT_FINDINGS: u8 = 1;
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Follow every job a scheduler (cron, crond, anacron, atd) starts, from kernel tracepoints, and show where each job's trigger path broke.",
    after_help = "Exit codes: 0 ran and found nothing wrong; 1 findings; 2 usage, setup or input error.\n\nRunbook:\n  sudo tracer check                      # can this host be traced?\n  sudo tracer record --duration 90       # catch the next minute's cron jobs\n  sudo tracer record --comm myscheduler  # follow another scheduler too"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Attach to the kernel and follow scheduled jobs live (needs root).
    ///
    /// Every process that descends from a scheduler daemon is followed: forks, execs
    /// (path, argv, env), opens, sockets and connects, chdir, uid/gid changes, NOFILE
    /// limits, exits. Jobs are printed as they finish; the run ends on Ctrl-C, SIGTERM
    /// or --duration, and detaches every probe.
    #[command(
        after_help = "Exit codes: 0 ran and found nothing wrong; 1 findings; 2 usage, setup or input error.\n\nExamples:\n  sudo tracer record --duration 90\n  sudo tracer record --pid $(pgrep -o cron) --format json > run.json"
    )]
    Record {
        /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Follow every process on the host, not just scheduler descendants (costly).
        #[arg(long)]
        all: bool,
        /// Also treat this process as a scheduler root (repeatable).
        #[arg(long = "pid", value_name = "PID")]
        pids: Vec<u32>,
        /// Also treat processes with this command name as roots, running or started later (repeatable; 15 chars are compared).
        #[arg(long = "comm", value_name = "NAME")]
        comms: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Keep env values and --password=-style arguments that look secret (redacted by default).
        #[arg(long)]
        capture_secrets: bool,
    },
    /// Preflight for runbooks: privileges, BPF, tracefs, tracepoints, schedulers running.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Record {
            duration,
            all,
            pids,
            comms,
            format,
            capture_secrets,
        } => {
            let duration = match duration {
                Some(d) if !(d.is_finite() && d > 0.0) => {
                    eprintln!("tracer: --duration must be a positive number of seconds, got {d}");
                    return ExitCode::from(EXIT_ERROR);
                }
                d => d.map(Duration::from_secs_f64),
            };
            let opts = record::RecordOptions {
                duration,
                all,
                pids,
                comms,
                format,
                capture_secrets,
            };
            match record::run(opts) {
                Ok(rep) if rep.has_findings() => ExitCode::from(EXIT_FINDINGS),
                Ok(_) => ExitCode::from(EXIT_CLEAN),
                Err(e) => {
                    eprintln!("tracer: error: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
        Cmd::Check => {
            let checks = check::run_checks();
            let mut failed = false;
            for c in &checks {
                let (tag, fix) = match (c.ok, c.required) {
                    (true, _) => ("ok  ", false),
                    (false, true) => {
                        failed = true;
                        ("FAIL", true)
                    }
                    (false, false) => ("warn", true),
                };
                println!("{tag} {:<16} {}", c.name, c.detail);
                if fix && !c.fix.is_empty() {
                    println!("     {:<16} fix: {}", "", c.fix);
                }
            }
            if failed {
                ExitCode::from(EXIT_ERROR)
            } else {
                ExitCode::from(EXIT_CLEAN)
            }
        }
    }
}

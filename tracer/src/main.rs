//! `tracer`: where did a scheduled job's trigger path break?

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use tracer::{
    commands::{
        check, crontab, export, export::ExportTo, record, replay, trigger, EXIT_CLEAN,
        EXIT_DAMAGED, EXIT_ERROR, EXIT_FINDINGS,
    },
    Format,
};

const EXIT_CODES: &str = "Exit codes:\n  0  ran and found nothing wrong\n  1  findings (a job failed)\n  2  usage, setup or input error (not root, no BPF, unreadable or not a trace file, newer format)\n  3  replay of a damaged trace (cut short or corrupt): analysed up to the damage";

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Follow every job a scheduler (cron, crond, anacron, atd, systemd timers) starts, from kernel tracepoints, and show where each job's trigger path broke.",
    after_help = "Exit codes: 0 nothing wrong; 1 findings; 2 usage, setup or input error; 3 damaged trace (replay).\n\nRunbook:\n  sudo tracer check                      # can this host be traced?\n  sudo tracer record --duration 90       # catch the next minute's cron jobs\n  sudo tracer record --comm myscheduler  # follow another scheduler too\n  sudo tracer record --output /var/tmp/cron.jtrace --duration 300\n  tracer replay /var/tmp/cron.jtrace     # later, anywhere, no root"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Say more on stderr: -v what the tracer attached and followed, and the kernel
    /// programs' rare anomalies (records dropped, strings truncated); -vv details.
    /// RUST_LOG (e.g. RUST_LOG=tracer=debug) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

/// The tracer's own diagnostics and the kernel programs' aya-log lines, on stderr.
fn init_logging(verbose: u8) {
    let filters = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => match verbose {
            0 => "tracer=warn".to_string(),
            1 => "tracer=info,tracer_ebpf=info".to_string(),
            2 => "tracer=debug,tracer_ebpf=debug".to_string(),
            _ => "trace".to_string(),
        },
    };
    env_logger::Builder::new()
        .parse_filters(&filters)
        .format(|buf, rec| {
            use std::io::Write;
            let from = if rec.target().starts_with("tracer_ebpf") {
                " (kernel)"
            } else {
                ""
            };
            writeln!(
                buf,
                "tracer: {}{from}: {}",
                rec.level().as_str().to_lowercase(),
                rec.args()
            )
        })
        .init();
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
        /// Stop after this many seconds, up to 366 days (default: until Ctrl-C / SIGTERM).
        #[arg(
            long,
            value_name = "SECS",
            value_parser = record::parse_duration,
            allow_negative_numbers = true
        )]
        duration: Option<Duration>,
        /// Follow every process on the host, not just scheduler descendants (costly).
        #[arg(long)]
        all: bool,
        /// Also treat this process as a scheduler root (repeatable).
        #[arg(
            long = "pid",
            value_name = "PID",
            value_parser = record::parse_pid,
            allow_negative_numbers = true
        )]
        pids: Vec<u32>,
        /// Also treat processes with this command name as roots, running or started
        /// later (repeatable; at most 15 bytes, as `ps -o comm` shows it).
        #[arg(long = "comm", value_name = "NAME", value_parser = record::parse_comm)]
        comms: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Keep env values and --password=-style arguments that look secret (redacted by default).
        #[arg(long)]
        capture_secrets: bool,
        /// Also write the trace to FILE (created 0600; never through a symlink; flushed every second).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Overwrite FILE if it exists (still never through a symlink).
        #[arg(long, requires = "output")]
        force: bool,
        /// Follow the crontab entries whose command contains PATTERN (or FILE:LINE, as
        /// `tracer crontab` lists them): print their next run, record until each has
        /// run and its job ended (or it was missed), then report and exit (repeatable).
        #[arg(long = "entry", value_name = "PATTERN")]
        entries: Vec<String>,
        /// Size of the kernel's event ring buffer in MiB (a power of two, 1 to 1024).
        /// Raise it when the run reports events_lost (bursts of thousands of processes).
        #[arg(long, value_name = "MIB", default_value_t = 16, value_parser = record::parse_ring_mb)]
        ring_mb: u32,
        /// Keep every job's timeline in the JSON report. By default a finished job
        /// with no finding is reported by its summary and event count, and its
        /// timeline is let go as soon as it ends, so a long attach stays small (text
        /// output prints each job whole as it ends either way).
        #[arg(long)]
        timelines: bool,
        /// Print one JSON document per line as things happen, for journald, Vector or
        /// Fluent Bit: each job when it ends, each host-level finding when it is found,
        /// a summary at the end. Jobs are let go once printed, so memory stays flat for
        /// a run of days (run it from a systemd unit: dist/tracer-follow.service).
        #[arg(long)]
        follow: bool,
        /// With --follow: append the lines to FILE (created 0600) instead of stdout;
        /// SIGHUP reopens it, after logrotate has moved it away.
        #[arg(long, value_name = "FILE", requires = "follow")]
        log: Option<PathBuf>,
    },
    /// Every crontab entry, its next runs, its environment, and what is wrong already.
    ///
    /// Reads the crontabs the way the running daemon does (Debian cron, cronie, busybox
    /// crond; a daemon in a container through its own root), lists each entry with its
    /// next fire times in its time zone, the environment and directory the job will
    /// get, and what can be seen to fail before it runs: files or lines the daemon
    /// skips (and why), a command not on cron's PATH (and where it really is), a script
    /// that is missing, not executable, or names a missing or CRLF `#!` interpreter.
    /// No BPF; root only to read other users' spools and other mount namespaces.
    #[command(
        after_help = "Exit codes: 0 nothing wrong; 1 findings; 2 usage error.\n\nExamples:\n  tracer crontab\n  tracer crontab --format json | jq '.entries[] | select(.findings != [])'\n  tracer crontab --from 2026-12-24T00:00:00Z --count 5"
    )]
    Crontab {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// List fire times after this RFC 3339 time (default: now).
        #[arg(long, value_name = "RFC3339")]
        from: Option<String>,
        /// How many fire times per entry (1 to 1000).
        #[arg(
            long,
            value_name = "N",
            default_value_t = 3,
            value_parser = crontab::parse_count,
            allow_negative_numbers = true
        )]
        count: usize,
    },
    /// Run one crontab entry now, exactly as its daemon would, traced.
    ///
    /// "Run the job by hand" from an interactive shell hides what cron changes: the
    /// user and groups, cron's short environment (PATH=/usr/bin:/bin), $HOME as the
    /// working directory, `SHELL -c`, stdin from `%`, no terminal. This runs PATTERN's
    /// entry that way, follows it with the kernel probes and reports it like a
    /// scheduled run. PATTERN must name exactly one entry (text of its command, or
    /// FILE:LINE from `tracer crontab`). Needs root.
    #[command(
        after_help = "Exit codes: 0 the job ran clean; 1 findings; 2 usage or setup error (no match, several matches, not root).\n\nExamples:\n  sudo tracer trigger backup --dry-run\n  sudo tracer trigger /etc/cron.d/backup:3"
    )]
    Trigger {
        /// Text of the entry's command, or FILE:LINE.
        pattern: String,
        /// Print what would run (user, directory, environment, command) and exit.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write the trace to FILE (as `record --output`).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// The stand-in daemon `trigger` runs (internal).
    #[command(name = "__as-cron", hide = true)]
    AsCron,
    /// Reads a container's crontabs confined to its root (internal).
    #[command(name = "__read-view", hide = true)]
    ReadView { args: Vec<String> },
    /// Reads a systemd manager's units confined to its root (internal).
    #[command(name = "__read-units", hide = true)]
    ReadUnits { args: Vec<String> },
    /// Analyse a trace written by `record --output`, offline, without root.
    ///
    /// Runs exactly the analysis the live run ran and prints the same report. A damaged
    /// file (cut short, corrupt block) is read up to and around the damage, with a
    /// warning that says where; the exit code is then 3.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The trace file.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Show only this job (the `id` in the report).
        #[arg(long, value_name = "ID")]
        job: Option<u64>,
        /// Analyse with this crontab instead of the one recorded: an absolute crontab
        /// path on this machine, or LOCAL=PATH for a copy standing in for the recorded
        /// host's PATH (e.g. ./backup=/etc/cron.d/backup). Repeatable.
        #[arg(long = "crontab", value_name = "PATH")]
        crontabs: Vec<String>,
        /// Keep every job's timeline in the JSON report (by default a job with no
        /// finding gives its event count only).
        #[arg(long)]
        timelines: bool,
    },
    /// Convert a trace for other tools: JSON lines for jq, or a visual timeline.
    #[command(
        after_help = "Exit codes: 0 written; 2 usage or input error; 3 the trace was damaged (what could be read was exported).\n\nExamples:\n  tracer export run.jtrace --to jsonl - | jq 'select(.error)'\n  tracer export run.jtrace --to perfetto run.json   # open in ui.perfetto.dev"
    )]
    Export {
        /// The trace file.
        file: PathBuf,
        #[arg(long, value_enum)]
        to: ExportTo,
        /// Where to write (created 0600: events hold argv and env); `-` for stdout.
        out: PathBuf,
        /// Overwrite OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Preflight for runbooks: privileges, BPF, tracefs, tracepoints, schedulers running.
    Check,
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A recording stays attached for hours on a production host: freed memory goes back
/// to the system at once, not after mimalloc's usual delay (with the delay, an idle
/// attach held 62 MiB instead of 40). A replay keeps the delay: it is 11% faster so.
fn hand_back_freed_memory() {
    // `mi_option_purge_delay` in mimalloc.h (v2 and v3); the crate does not name it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets an allocator option, read whenever it frees pages.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.cmd {
        Cmd::Record {
            duration,
            all,
            pids,
            comms,
            format,
            capture_secrets,
            output,
            force,
            entries,
            ring_mb,
            timelines,
            follow,
            log,
        } => {
            hand_back_freed_memory();
            let opts = record::RecordOptions {
                duration,
                all,
                pids,
                comms,
                format,
                capture_secrets,
                output,
                force,
                entries,
                ring_mb,
                timelines,
                follow: follow.then_some(log),
                trigger: None,
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
        Cmd::Replay {
            file,
            format,
            job,
            crontabs,
            timelines,
        } => {
            match replay::run(&replay::ReplayOptions {
                path: file,
                format,
                job,
                crontabs,
                timelines,
            }) {
                Ok(r) if r.damage.is_some() => ExitCode::from(EXIT_DAMAGED),
                Ok(r) if r.report.has_findings() => ExitCode::from(EXIT_FINDINGS),
                Ok(_) => ExitCode::from(EXIT_CLEAN),
                Err(e) => {
                    eprintln!("tracer: error: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
        Cmd::Export {
            file,
            to,
            out,
            force,
        } => export::run(&file, to, &out, force),
        Cmd::Check => check::print_and_exit_code(&check::run_checks()),
        Cmd::Trigger {
            pattern,
            dry_run,
            format,
            output,
            force,
        } => trigger::run(trigger::TriggerOptions {
            pattern,
            dry_run,
            format,
            output,
            force,
        }),
        Cmd::AsCron => ExitCode::from(tracer::capture::as_cron::stand_in_main()),
        Cmd::ReadView { args } => ExitCode::from(tracer::capture::host::read_view_main(&args)),
        Cmd::ReadUnits { args } => ExitCode::from(tracer::capture::host::read_units_main(&args)),
        Cmd::Crontab {
            format,
            from,
            count,
        } => crontab::run(&crontab::CrontabOptions {
            format,
            from,
            count,
        }),
    }
}

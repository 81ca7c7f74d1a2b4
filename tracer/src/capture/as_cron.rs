//! Starting a crontab entry's command the way Debian's cron does, for `tracer trigger`:
//! a process standing in for the daemon forks the job, which takes the entry user's
//! groups and uid, enters `$HOME`, gets only cron's environment, has no terminal, reads
//! the `%` text on stdin, and runs `SHELL -c COMMAND`. The stand-in collects the output
//! (cron would mail it) and exits with the job's status.
use std::{
    collections::BTreeMap,
    ffi::CString,
    io::{Read, Write},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Command, Stdio},
};

use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

/// Everything the stand-in needs; sent on its stdin (argv would show env values in
/// `ps`), which also tells it when the tracer follows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub env: BTreeMap<String, String>,
    pub command: String,
    pub stdin: Option<String>,
}

static JOB_PGID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pgid = JOB_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// The hidden `tracer __as-cron` process: read the plan, run the job, report its end.
pub fn stand_in_main() -> u8 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("tracer: trigger: cannot read the job plan: {e}");
        return 2;
    }
    let plan: Plan = match serde_json::from_str(&input) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tracer: trigger: the job plan is not valid ({e})");
            return 2;
        }
    };
    match run(&plan) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tracer: trigger: {e}");
            2
        }
    }
}

fn run(plan: &Plan) -> Result<u8, String> {
    let user = CString::new(plan.user.as_str()).map_err(|_| "user name has a NUL byte")?;
    let home = CString::new(plan.home.as_str()).map_err(|_| "home has a NUL byte")?;
    let (uid, gid) = (plan.uid, plan.gid);
    // cron gives the job one pipe for stdout and stderr, and mails what comes out.
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let mut cmd = Command::new(&plan.shell);
    cmd.arg("-c")
        .arg(&plan.command)
        .env_clear()
        .envs(&plan.env)
        .stdin(if plan.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(writer.try_clone().map_err(|e| format!("pipe: {e}"))?)
        .stderr(writer);
    // SAFETY: only async-signal-safe calls but initgroups, which is fine in this
    // single-threaded stand-in; the order is cron's (do_command.c, child_process).
    unsafe {
        cmd.pre_exec(move || {
            let fail = |what: &str| {
                let e = std::io::Error::last_os_error();
                Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
            };
            if libc::setsid() < 0 {
                return fail("setsid");
            }
            if libc::setgid(gid) != 0 {
                return fail("setgid");
            }
            if libc::initgroups(user.as_ptr(), gid) != 0 {
                return fail("initgroups");
            }
            if libc::setuid(uid) != 0 {
                return fail("setuid");
            }
            if libc::chdir(home.as_ptr()) != 0 {
                return fail("chdir($HOME)");
            }
            // Cron's jobs inherit no descriptor but stdio; ours might (from the shell
            // that ran the tracer). Marked close-on-exec rather than closed: the pipe
            // that reports a failed exec back to us must survive until the exec.
            const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        let cmd = crate::secrets::redact_line(&plan.command, &mut Default::default())
            .unwrap_or_else(|| plan.command.clone());
        format!("cron would not have run `{cmd}`: {e}")
    })?;
    drop(cmd);
    // Ctrl-C on the tracer reaches us (same process group), not the job (its own
    // session): pass it on, so no job is left running untraced.
    JOB_PGID.store(child.id() as i32, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill(2).
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    if let (Some(text), Some(mut w)) = (&plan.stdin, child.stdin.take()) {
        let _ = w.write_all(text.as_bytes());
    }
    let mut output = Vec::new();
    let _ = reader.read_to_end(&mut output);
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if !output.is_empty() {
        eprintln!(
            "tracer: the job's output (cron would mail it{}):\n{}",
            plan.env
                .get("MAILTO")
                .map(|m| format!(" to {m:?}"))
                .unwrap_or_else(|| format!(" to {}", plan.user)),
            String::from_utf8_lossy(&output).trim_end()
        );
    }
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        _ => 1,
    })
}

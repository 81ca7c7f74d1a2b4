//! Test helper: a second thread execs the command line given (as Go programs and
//! other threaded runtimes do), so the kernel makes that thread the process's leader
//! while its exec is under way.
use std::os::unix::process::CommandExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: jt-exec-thread COMMAND [ARG...]");
        std::process::exit(2);
    };
    let (cmd, rest) = (cmd.clone(), rest.to_vec());
    let t = std::thread::spawn(move || {
        let e = std::process::Command::new(&cmd).args(&rest).exec();
        eprintln!("jt-exec-thread: exec {cmd}: {e}");
        std::process::exit(127);
    });
    let _ = t.join();
    // The exec replaces the whole process: the leader never gets here.
    std::process::exit(126);
}

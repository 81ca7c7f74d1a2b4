//! Test helper: a second thread sends SIGABRT to itself (a thread-directed signal, as a
//! crash in a worker thread would be), which ends the whole process.
fn main() {
    let t = std::thread::spawn(|| unsafe {
        libc::pthread_kill(libc::pthread_self(), libc::SIGABRT);
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    let _ = t.join();
}

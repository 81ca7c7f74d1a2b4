//! The exit statuses a service's process ends with when systemd's own set-up failed
//! before the command ran (src/basic/exit-status.h), by the names `systemctl status`
//! prints (`status=203/EXEC`), with what each means for the unit.

/// systemd's name for an exit code of its set-up, and what went wrong, in its words.
pub fn setup_failure(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        200 => ("CHDIR", "could not enter WorkingDirectory="),
        201 => ("NICE", "could not set Nice="),
        202 => ("FDS", "could not close or pass file descriptors"),
        203 => ("EXEC", "could not execute the ExecStart= binary"),
        204 => ("MEMORY", "out of memory while setting up"),
        205 => ("LIMITS", "could not apply a Limit*= setting"),
        206 => ("OOM_ADJUST", "could not set OOMScoreAdjust="),
        207 => ("SIGNAL_MASK", "could not set the signal mask"),
        208 => ("STDIN", "could not set up StandardInput="),
        209 => ("STDOUT", "could not set up StandardOutput="),
        210 => ("CHROOT", "could not enter RootDirectory="),
        211 => ("IOPRIO", "could not set IOSchedulingPriority="),
        212 => ("TIMERSLACK", "could not set TimerSlackNSec="),
        213 => ("SECUREBITS", "could not set SecureBits="),
        214 => ("SETSCHEDULER", "could not set CPUSchedulingPolicy="),
        215 => ("CPUAFFINITY", "could not set CPUAffinity="),
        216 => ("GROUP", "could not resolve or set Group="),
        217 => ("USER", "could not resolve or set User="),
        218 => ("CAPABILITIES", "could not set the capabilities"),
        219 => ("CGROUP", "could not put the process in its cgroup"),
        220 => ("SETSID", "could not start a session"),
        221 => ("CONFIRM", "the start was not confirmed"),
        222 => ("STDERR", "could not set up StandardError="),
        224 => ("PAM", "the PAM session failed (PAMName=)"),
        225 => ("NETWORK", "could not set up PrivateNetwork="),
        226 => ("NAMESPACE", "could not set up the mount namespace (ProtectSystem=, ReadWritePaths=, PrivateTmp=...)"),
        227 => ("NO_NEW_PRIVILEGES", "could not set NoNewPrivileges="),
        228 => ("SECCOMP", "could not install SystemCallFilter="),
        229 => ("SELINUX_CONTEXT", "could not set SELinuxContext="),
        230 => ("PERSONALITY", "could not set Personality="),
        231 => ("APPARMOR", "could not apply AppArmorProfile="),
        232 => ("ADDRESS_FAMILIES", "could not apply RestrictAddressFamilies="),
        233 => ("RUNTIME_DIRECTORY", "could not create RuntimeDirectory="),
        235 => ("CHOWN", "could not change the owner of the socket"),
        236 => ("SMACK_PROCESS_LABEL", "could not set SmackProcessLabel="),
        237 => ("KEYRING", "could not set up the kernel keyring"),
        238 => ("STATE_DIRECTORY", "could not create StateDirectory="),
        239 => ("CACHE_DIRECTORY", "could not create CacheDirectory="),
        240 => ("LOGS_DIRECTORY", "could not create LogsDirectory="),
        241 => ("CONFIGURATION_DIRECTORY", "could not create ConfigurationDirectory="),
        242 => ("NUMA_POLICY", "could not set NUMAPolicy="),
        243 => ("CREDENTIALS", "could not set up the credentials (LoadCredential=...)"),
        244 => ("BPF", "could not set up a BPF program (IPAddressDeny=, ...)"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_up_failures_have_systemds_names() {
        assert_eq!(setup_failure(203).map(|s| s.0), Some("EXEC"));
        assert_eq!(setup_failure(200).map(|s| s.0), Some("CHDIR"));
        assert_eq!(setup_failure(217).map(|s| s.0), Some("USER"));
        assert_eq!(setup_failure(1), None);
        assert_eq!(setup_failure(234), None);
        assert_eq!(setup_failure(244).map(|s| s.0), Some("BPF"));
    }
}

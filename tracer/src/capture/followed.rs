//! The kernel's `FOLLOWED` table, seen from user space through a shared mapping: one
//! byte per tgid that says "maybe followed" (see the map in the eBPF crate). User
//! space only sets bytes, of the processes it follows from `/proc` or `--pid`, before
//! their `TRACKED` entries go in; the kernel clears a byte when its process ends.
//!
//! A write is one byte, straight into the kernel's memory. A map update rewrites a
//! whole entry of 64 tgids and would undo a byte the kernel wrote meanwhile: a
//! followed child would then look unfollowed to every probe.
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::MapData;
use tracer_common::FOLLOWED_GROUP;

/// Linux's ceiling on pid_max (PID_MAX_LIMIT on 64-bit).
const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

/// Entries the table needs on this host: `pid_max` tgids, 64 to an entry. A tgid past
/// the end (pid_max raised after the attach) is looked up in `TRACKED` by the kernel.
pub fn entries() -> u32 {
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(PID_MAX_LIMIT)
        .clamp(1, PID_MAX_LIMIT);
    pid_max.div_ceil(FOLLOWED_GROUP as u32)
}

pub struct Followed {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping belongs to the process and lives as long as this value; writes
// are single bytes, which the kernel's readers and writers tolerate from any thread.
unsafe impl Send for Followed {}

impl Followed {
    /// Map the table (`entries` as the loader sized it) into this process.
    pub fn map(data: &MapData, entries: u32) -> Result<Self, String> {
        let len = entries as usize * FOLLOWED_GROUP;
        // SAFETY: a shared mapping of a BPF array created with BPF_F_MMAPABLE, of at
        // most the array's size; the kernel checks both.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot map the FOLLOWED table ({len} bytes): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Followed {
            base: base.cast(),
            len,
        })
    }

    /// `tgid` may be followed from now on: set before its `TRACKED` entry goes in.
    pub fn mark(&self, tgid: u32) {
        let i = tgid as usize;
        if i < self.len {
            // SAFETY: in bounds of the live mapping.
            unsafe { self.base.add(i).write_volatile(1) };
        }
    }

    #[cfg(test)]
    fn is_marked(&self, tgid: u32) -> bool {
        let i = tgid as usize;
        // SAFETY: in bounds of the live mapping.
        i < self.len && unsafe { self.base.add(i).read_volatile() } != 0
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_cover_pid_max() {
        let n = entries() as u64 * FOLLOWED_GROUP as u64;
        let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(PID_MAX_LIMIT as u64);
        assert!(
            n >= pid_max && n < pid_max + FOLLOWED_GROUP as u64,
            "{n} for {pid_max}"
        );
    }

    #[test]
    fn marks_stay_inside_the_mapping() {
        // An anonymous mapping stands in for the map (no BPF without root).
        let len = 2 * FOLLOWED_GROUP;
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let t = Followed {
            base: base.cast(),
            len,
        };
        t.mark(70);
        t.mark(len as u32); // past the end: the kernel asks TRACKED for it
        assert!(t.is_marked(70));
        assert!(!t.is_marked(69) && !t.is_marked(71));
        assert!(!t.is_marked(len as u32));
    }
}

//! Kernel programs: tracepoints on the job trigger path, filtered in the kernel to the
//! processes that descend from a scheduler root. One file per event kind under `probes/`,
//! named like the record it emits in `tracer-common`.
#![no_std]
#![no_main]

mod anomaly;
mod common;
mod maps;
mod pending;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

//! Embed the kernel object built by `cargo xtask build` (or named by TRACER_EBPF_OBJECT).
//! Without one the binary still builds (so `cargo test` and clippy need no nightly),
//! and `tracer record` says how to get a complete build.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ebpf_embedded)");
    println!("cargo:rerun-if-env-changed=TRACER_EBPF_OBJECT");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let default = manifest.join("../tracer-ebpf/target/bpfel-unknown-none/release/tracer-ebpf");
    let src = env::var_os("TRACER_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("tracer.bpf.o");
    match fs::read(&src) {
        Ok(bytes) if !bytes.is_empty() => {
            fs::write(&out, bytes).unwrap();
            println!("cargo:rustc-cfg=ebpf_embedded");
        }
        _ => fs::write(&out, b"").unwrap(),
    }
}

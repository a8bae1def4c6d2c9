//! Puts the right `memory.x` where the linker finds it and passes the
//! linker scripts of cortex-m-rt and defmt to the binary only.
//!
//! The memory maps live in `memory/` rather than as `memory.x` in the
//! package root: the linker looks in its working directory (this folder)
//! before the search path, so a root `memory.x` would win over the QEMU one.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = if env::var_os("CARGO_FEATURE_QEMU").is_some() {
        "memory/qemu-mps2-an386.x"
    } else {
        "memory/nucleo-f411re.x"
    };
    fs::copy(memory, out.join("memory.x")).expect("copy memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}

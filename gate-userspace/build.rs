//! Builds the XDP program through aya-build when WOTGATE_BUILD_EBPF=1 (as
//! `cargo xtask` does); otherwise leaves an empty object so check/clippy/unit tests need no bpf-linker.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=WOTGATE_BUILD_EBPF");
    println!("cargo:rerun-if-env-changed=WOTGATE_EBPF_TOOLCHAIN");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let obj = out.join("gate-ebpf");
    let wanted = matches!(
        env::var("WOTGATE_BUILD_EBPF").as_deref(),
        Ok("1") | Ok("true")
    );
    if !wanted {
        // An empty object: the loader reports "built without the XDP program".
        fs::write(&obj, [])?;
        return Ok(());
    }
    let toolchain = env::var("WOTGATE_EBPF_TOOLCHAIN").unwrap_or_else(|_| "/usr".to_string());
    let ebpf_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?)
        .parent()
        .expect("workspace root")
        .join("gate-ebpf");
    let root_dir = ebpf_dir.to_str().expect("utf-8 path");
    println!("cargo:rerun-if-changed={}", root_dir);
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.parent().unwrap().join("gate-common/src").display()
    );
    // Debian's rustc is a stable compiler; aya-ebpf needs one unstable
    // feature. Allow it for that crate only (not "1": aya-build would then
    // add -Z build-std, which needs rust-src).
    if env::var_os("RUSTC_BOOTSTRAP").is_none() {
        env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf");
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "gate-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

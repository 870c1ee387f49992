//! Code generation options for the XDP program, passed to bpf-linker (which
//! compiles the bitcode): the kernel allows misaligned packet and map loads
//! on the architectures we run on, so a 2- or 4-byte field is one load, not
//! bytes put together (the stack stays aligned: LLVM keeps its slots so).
fn main() {
    println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
}

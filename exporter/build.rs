//! Links the `quantwatch-exporter` binary as a position-dependent executable (`-no-pie`).
//!
//! A PIE is relocated at start: the dynamic loader reads the whole relocation table
//! (`.rela.dyn`, ~1.5 MB here) and writes every page of `.data.rel.ro` (vtables, static
//! string tables, tracing call sites: ~1.25 MiB), and both stay resident for the process's
//! life. Linked at a fixed address, neither happens: the pointers are resolved by the linker
//! and only the pages a scrape reads are mapped. That is most of the gap between our resident
//! memory and the budget (README, "Performance"). The cost is that the executable's own
//! image is not address-randomised (shared libraries, heap and stacks still are); the binary
//! is memory-safe Rust serving one read-only endpoint, and we take that trade. Only this
//! package's binaries are affected (`rustc-link-arg-bins`), never its tests or the router.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

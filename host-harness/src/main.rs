//! The `gmm` command line; everything lives in `host_harness::cli`.

fn main() {
    std::process::exit(host_harness::cli::main());
}

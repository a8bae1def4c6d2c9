//! Replays every saved fuzz input (`fixtures/fuzz/*`: crashes found by
//! `cargo xtask fuzz`, kept as regression tests) through the fuzz harness
//! `tests::fuzz::run`, then a few thousand random inputs from a printed
//! seed, so the harness's promises are also checked in a plain
//! `cargo test`.

use tests::Rand;

#[test]
fn saved_fuzz_inputs_do_not_fail() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures/fuzz exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        eprintln!("replaying {}", path.display());
        tests::fuzz::run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    eprintln!("{n} saved inputs replayed");
}

#[test]
fn random_inputs_do_not_fail() {
    let mut r = Rand::new(tests::seed("random_inputs_do_not_fail", 1));
    for _ in 0..2000 {
        let len = r.int(0, 600);
        let bytes: Vec<u8> = (0..len).map(|_| r.u64() as u8).collect();
        tests::fuzz::run(&bytes);
    }
}

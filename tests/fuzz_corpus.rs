//! The fuzz targets without the fuzzer: every target's seed corpus (`fuzz/corpus/<target>/`),
//! every input a fuzz run found a bug with (`fuzz/regressions/<target>/`, kept once the bug is
//! fixed), and [`MUTATIONS`] inputs mutated from the seeds, run through the same entry points
//! the libFuzzer harness calls (`vmux::fuzz::TARGETS`). Keeps the harnesses compiling, the
//! seeds valid and fixed bugs fixed in `cargo test`; the coverage-guided runs are
//! `scripts/fuzz.sh`.

use std::path::PathBuf;

/// Mutated inputs per target.
const MUTATIONS: usize = 300;

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir("corpus", target)
}

/// The files of `dir`, sorted by name, with their names; none when it does not exist.
fn inputs(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("read a fuzz input");
            (path, data)
        })
        .collect()
}

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few libFuzzer-like mutations of `seed`: byte flips, interesting integers, cuts, inserts.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len());
        match rng.below(5) {
            0 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
            1 if !data.is_empty() => data[at] = rng.next() as u8,
            2 => {
                let value: u64 = match rng.below(5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << rng.below(64),
                    3 => (1 << rng.below(64)) - 1,
                    _ => rng.next(),
                };
                let width = [1, 2, 4, 8][rng.below(4)].min(data.len() - at.min(data.len()));
                data[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            3 => data.truncate(at),
            _ => {
                let len = rng.below(32);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
        }
    }
    data
}

fn replay(target: &str) {
    let run = vmux::fuzz::target(target).expect("a known target");
    for (path, data) in inputs(&fuzz_dir("regressions", target)) {
        eprintln!("regression input {}", path.display());
        run(&data);
    }
    let seeds: Vec<Vec<u8>> = inputs(&corpus_dir(target))
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    assert!(!seeds.is_empty(), "{target} has no seeds");
    for seed in &seeds {
        run(seed);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for i in 0..MUTATIONS {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        run(&input);
    }
    run(&[]);
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in vmux::fuzz::TARGETS {
        assert!(corpus_dir(name).is_dir(), "fuzz/corpus/{name} is missing");
    }
}

macro_rules! replays {
    ($($test:ident => $target:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            replay($target);
        }
    )*};
}

replays! {
    virtio_blk_survives_its_corpus_and_mutations => "virtio_blk",
    virtio_net_survives_its_corpus_and_mutations => "virtio_net",
    pci_survives_its_corpus_and_mutations => "pci",
    control_survives_its_corpus_and_mutations => "control",
    qcow2_header_survives_its_corpus_and_mutations => "qcow2_header",
    qcow2_open_survives_its_corpus_and_mutations => "qcow2_open",
    definitions_survive_their_corpus_and_mutations => "definitions",
    cloudinit_survives_its_corpus_and_mutations => "cloudinit",
    console_survives_its_corpus_and_mutations => "console",
    bootimg_survives_its_corpus_and_mutations => "bootimg",
}

//! Every input saved under `fuzz/regressions/<target>/` (crashers once found, and seeds that
//! reach deep paths) replayed through the fuzzing harness: none may panic. The harness is the
//! very file the `cargo fuzz` targets use (docs/fuzzing.md).

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("otlp_protobuf", harness::otlp_protobuf),
    ("otlp_json", harness::otlp_json),
    ("sentry_envelope", harness::sentry_envelope),
    ("prometheus_exposition", harness::prometheus_exposition),
    ("topology", harness::topology),
    ("detect_csv", harness::detect_csv),
];

#[test]
fn every_saved_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.file_name().is_some_and(|n| n == ".gitkeep") {
                continue;
            }
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            target(&data);
            inputs += 1;
        }
        assert!(inputs > 0, "no saved input for {name} in {}", dir.display());
        replayed += inputs;
    }
    eprintln!("replayed {replayed} saved inputs");
    // The seeds are valid requests of each kind: they reach the store, so the harness
    // exercises the receivers' conversion and the store's insertion, not only the decoders.
    let stored = harness::stored();
    assert!(
        stored.spans >= 4,
        "spans from OTLP and Sentry seeds: {stored:?}"
    );
    assert!(stored.logs >= 2, "logs from the OTLP seeds: {stored:?}");
    assert!(stored.series >= 2, "series from the OTLP seeds: {stored:?}");
    assert!(
        stored.exception_groups >= 1,
        "a group from the Sentry seeds: {stored:?}"
    );
}

//! `floom.toml` parsing and validation: `floom_runtime::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floom_runtime::fuzzing::manifest(data));

//! Multipart publish uploads through the real API router, as the admin:
//! `floom_host::fuzzing::PublishHarness`.
#![no_main]

use std::sync::LazyLock;

use floom_host::fuzzing::PublishHarness;

/// One server state for the whole run, in a scratch directory of this process.
static HARNESS: LazyLock<PublishHarness> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("floom-fuzz-publish-{}", std::process::id()));
    PublishHarness::new(dir).expect("the publish harness starts")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS.publish(data);
});

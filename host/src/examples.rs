//! The example apps, built from `examples/` by the build script and bundled into the
//! binary, so `floom serve --examples` can publish them wherever it runs.

/// One bundled example app.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The crate name.
    pub name: &'static str,
    /// Its `floom.toml`.
    pub manifest: &'static str,
    /// Its component.
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

//! The example apps, built from `examples/` by the build script and bundled into the
//! binary, so `floom serve --examples` can publish them wherever it runs.

/// One bundled example app.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The crate (or, for Python, folder) name.
    pub name: &'static str,
    /// A Python app: a large component that takes seconds to compile the first time.
    pub python: bool,
    /// Its `floom.toml`.
    pub manifest: &'static str,
    /// Its component.
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

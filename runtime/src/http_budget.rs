//! The per-run budget of host memory a guest may make the host hold through `wasi:http`
//! ([`Caps::http_memory_bytes`](crate::Caps::http_memory_bytes)).
//!
//! Most `wasi:http` resources are small and fixed-size, so the resource table's handle
//! cap bounds them. A few are not: their size is chosen by the guest, and they live as
//! long as the guest keeps the handle, whether or not a request is ever sent. Without a
//! budget, 4,000 unsent requests with 1 MiB written into each body held 4 GB of host
//! memory in one run. So each of the calls below is charged, before it runs, for what
//! it may make the host hold:
//!
//! - a fields map (`[constructor]fields`, `[static]fields.from-list`,
//!   `[method]fields.clone`): its size limit, [`FIELDS_BYTES`], since later `set` and
//!   `append` calls may fill it up to that (one that would pass it traps in
//!   wasmtime-wasi-http itself, also reported as `memory_limit`);
//! - an outgoing request or response (their constructors): [`MESSAGE_BYTES`];
//! - the strings set on a request (`set-method`, `set-path-with-query`,
//!   `set-authority`, `set-scheme`): their length;
//! - an outgoing body (`[method]outgoing-request.body`,
//!   `[method]outgoing-response.body`): what its channel may buffer,
//!   ([`BODY_BUFFER_CHUNKS`] + 1) × [`BODY_CHUNK_BYTES`], plus [`MESSAGE_BYTES`].
//!
//! Charges are cumulative and never refunded: dropping a handle does not give budget
//! back, so no drop hook is needed and the budget bounds what a run can ever make the
//! host allocate this way. Past the budget the call traps with [`HttpMemoryExceeded`]
//! and the run fails with `memory_limit`.
//!
//! Apps without `[network]` never get here: they are linked without `wasi:http`
//! (`Flavor::link`). What comes from the network (response heads and bodies) is not charged here: it is
//! bounded by the run's request cap, the connection's buffer size and the response
//! byte budget (`crate::outbound`).
//!
//! The charges are made by re-defining exactly those functions in the linker (after
//! wasmtime-wasi-http's own), each charging and then calling wasmtime-wasi-http's
//! implementation.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::types as wit;
use wasmtime_wasi_http::p2::types::{HostOutgoingRequest, HostOutgoingResponse};
use wasmtime_wasi_http::{FieldMap, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outcome::HttpMemoryExceeded;

/// The instance wasmtime-wasi-http 48 registers `wasi:http/types` under (the version of
/// its WIT); components importing any 0.2.x version are linked to it. The hoard tests
/// fail if an upgrade changes it and the charges silently stop applying.
const TYPES: &str = "wasi:http/types@0.2.12";

/// The size limit of each fields map (wasmtime-wasi-http's default is 128 KiB). It counts
/// names, values and per-entry overhead, so 64 KiB leaves room for any real header set.
pub(crate) const FIELDS_BYTES: usize = 64 << 10;
/// The fixed charge for an outgoing request or response: the struct, its table entry and
/// allocator slack, rounded up.
pub(crate) const MESSAGE_BYTES: u64 = 1 << 10;
/// Largest single write into an outgoing body (wasmtime-wasi-http's default is 1 MiB).
/// `check-write` grants this much, so guests write in pieces of at most this size.
pub(crate) const BODY_CHUNK_BYTES: usize = 64 << 10;
/// Writes an outgoing body buffers beyond the one in flight (wasmtime-wasi-http's
/// default, stated here because the charge depends on it).
pub(crate) const BODY_BUFFER_CHUNKS: usize = 1;
/// What one outgoing body may hold: its channel has room for `BODY_BUFFER_CHUNKS + 1`
/// writes.
const BODY_BYTES: u64 = ((BODY_BUFFER_CHUNKS + 1) * BODY_CHUNK_BYTES) as u64 + MESSAGE_BYTES;

/// The run's `wasi:http` context, with the smaller fields limit the charges assume.
pub(crate) fn http_ctx() -> WasiHttpCtx {
    let mut ctx = WasiHttpCtx::new();
    ctx.set_field_size_limit(FIELDS_BYTES);
    ctx
}

/// What a run has been charged so far, against its limit.
#[derive(Debug)]
pub(crate) struct HttpBudget {
    limit: u64,
    used: u64,
}

impl HttpBudget {
    pub(crate) fn new(limit: u64) -> Self {
        HttpBudget { limit, used: 0 }
    }

    /// Charges `bytes`; past the limit, the error that traps the guest.
    fn charge(&mut self, bytes: u64) -> Result<(), HttpMemoryExceeded> {
        let used = self.used.saturating_add(bytes);
        if used > self.limit {
            return Err(HttpMemoryExceeded {
                limit: self.limit,
                requested: used,
            });
        }
        self.used = used;
        Ok(())
    }
}

/// Store data whose `wasi:http` use is charged against an [`HttpBudget`].
pub(crate) trait HttpBudgeted: WasiHttpView + 'static {
    fn http_budget(&mut self) -> &mut HttpBudget;
}

/// Charges `bytes`, then runs `call` on the `wasi:http` view.
fn charged<T: HttpBudgeted, R>(
    mut store: StoreContextMut<'_, T>,
    bytes: u64,
    call: impl FnOnce(&mut WasiHttpCtxView<'_>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let state = store.data_mut();
    state.http_budget().charge(bytes)?;
    call(&mut state.http())
}

fn len(text: Option<&str>) -> u64 {
    text.map_or(0, |s| s.len() as u64)
}

/// Adds `wasi:http` (outgoing handler and types) to `linker`, with the calls listed in the
/// module docs charged against the run's budget.
pub(crate) fn add_to_linker<T: HttpBudgeted>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;

    types.func_wrap("[constructor]fields", |store, (): ()| {
        charged(store, FIELDS_BYTES as u64, |http| {
            Ok((wit::HostFields::new(http)?,))
        })
    })?;
    types.func_wrap(
        "[static]fields.from-list",
        |store, (entries,): (Vec<(String, Vec<u8>)>,)| {
            charged(store, FIELDS_BYTES as u64, |http| {
                Ok((match wit::HostFields::from_list(http, entries) {
                    Ok(fields) => Ok(fields),
                    Err(e) => Err(wit::Host::convert_header_error(http, e)?),
                },))
            })
        },
    )?;
    types.func_wrap(
        "[method]fields.clone",
        |store, (fields,): (Resource<FieldMap>,)| {
            charged(store, FIELDS_BYTES as u64, |http| {
                Ok((wit::HostFields::clone(http, fields)?,))
            })
        },
    )?;

    types.func_wrap(
        "[constructor]outgoing-request",
        |store, (headers,): (Resource<FieldMap>,)| {
            charged(store, MESSAGE_BYTES, |http| {
                Ok((wit::HostOutgoingRequest::new(http, headers)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |store, (request,): (Resource<HostOutgoingRequest>,)| {
            charged(store, BODY_BYTES, |http| {
                Ok((wit::HostOutgoingRequest::body(http, request)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-method",
        |store, (request, method): (Resource<HostOutgoingRequest>, wit::Method)| {
            let bytes = match &method {
                wit::Method::Other(name) => name.len() as u64,
                _ => 0,
            };
            charged(store, bytes, |http| {
                Ok((wit::HostOutgoingRequest::set_method(http, request, method)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |store, (request, path): (Resource<HostOutgoingRequest>, Option<String>)| {
            charged(store, len(path.as_deref()), |http| {
                Ok((wit::HostOutgoingRequest::set_path_with_query(
                    http, request, path,
                )?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        |store, (request, authority): (Resource<HostOutgoingRequest>, Option<String>)| {
            charged(store, len(authority.as_deref()), |http| {
                Ok((wit::HostOutgoingRequest::set_authority(
                    http, request, authority,
                )?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-scheme",
        |store, (request, scheme): (Resource<HostOutgoingRequest>, Option<wit::Scheme>)| {
            let bytes = match &scheme {
                Some(wit::Scheme::Other(name)) => name.len() as u64,
                _ => 0,
            };
            charged(store, bytes, |http| {
                Ok((wit::HostOutgoingRequest::set_scheme(http, request, scheme)?,))
            })
        },
    )?;

    types.func_wrap(
        "[constructor]outgoing-response",
        |store, (headers,): (Resource<FieldMap>,)| {
            charged(store, MESSAGE_BYTES, |http| {
                Ok((wit::HostOutgoingResponse::new(http, headers)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |store, (response,): (Resource<HostOutgoingResponse>,)| {
            charged(store, BODY_BYTES, |http| {
                Ok((wit::HostOutgoingResponse::body(http, response)?,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_to_the_limit_and_never_past_it() {
        let mut budget = HttpBudget::new(100);
        assert!(budget.charge(60).is_ok());
        assert!(budget.charge(40).is_ok());
        let refused = budget.charge(1).unwrap_err();
        assert_eq!((refused.limit, refused.requested), (100, 101));
        // A refused charge is not recorded; nothing is ever given back.
        assert!(budget.charge(0).is_ok());
        assert!(budget.charge(u64::MAX).is_err());
    }
}

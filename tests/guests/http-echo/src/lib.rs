//! Answers every HTTP request with `{"greeting":"Hello, Ada!"}`: the same work as the
//! `hello` example, as a `wasi:http/proxy` component for `wasmtime serve`.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Echo;

const BODY: &[u8] = br#"{"greeting":"Hello, Ada!"}"#;

impl wasip2::exports::http::incoming_handler::Guest for Echo {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"application/json".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(BODY);
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Echo);

//! Arbitrary bytes to the protocol decoder, as a request line arrives from
//! any local user. It must never panic, and a request it accepts must
//! encode to one line that decodes to the same request (what the client
//! libraries send is what the broker reads).

#![no_main]

use iam_pgbroker_proto::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Used for the error frame of a line that does not decode.
    let peeked = Request::peek_id(data);
    let Ok(request) = Request::decode(data) else {
        return;
    };
    // A line whose `id` appears once: peek_id reads the same id (with the
    // key twice, the decoder keeps the last and peek_id gives up).
    if let Some(id) = peeked {
        assert_eq!(id, request.id, "peek_id and decode disagree on {data:?}");
    }
    let line = request.encode();
    let body = line
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{request:?} encoded without its newline: {line:?}"));
    assert!(!body.contains('\n'), "{request:?} encoded on several lines");
    let again = Request::decode(body.as_bytes())
        .unwrap_or_else(|e| panic!("{request:?} encodes as {body:?}, which does not decode: {e}"));
    assert_eq!(again, request, "{body:?}");
    // Decoding takes the line with or without its newline.
    assert_eq!(Request::decode(line.as_bytes()).as_ref(), Ok(&request));
});

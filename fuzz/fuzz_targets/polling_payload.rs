//! One HTTP long-polling body: never panics, and a body that decodes re-encodes to the same packets.
#![no_main]

use bytes::Bytes;
use chatgate_codec::{payload, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::DEFAULT;
    if let Ok(packets) = payload::decode(Bytes::copy_from_slice(data), &limits) {
        let again = payload::decode(payload::encode(&packets), &limits).expect("re-encoded body");
        assert_eq!(again, packets);
    }
});

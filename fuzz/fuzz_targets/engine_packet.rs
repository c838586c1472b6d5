//! One WebSocket message as an Engine.IO packet: never panics, and whatever decodes re-encodes to
//! a packet that decodes the same.
#![no_main]

use bytes::Bytes;
use chatgate_codec::engine::Packet;
use chatgate_codec::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::DEFAULT;
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(packet) = Packet::decode_text_bytes(bytes.clone(), &limits) {
        let again = Packet::decode(packet.encode(), &limits).expect("re-encoded packet decodes");
        assert_eq!(again, packet);
    }
    if let Ok(packet) = Packet::decode_binary(bytes, &limits) {
        assert_eq!(Packet::decode(packet.encode(), &limits).ok(), Some(packet));
    }
});

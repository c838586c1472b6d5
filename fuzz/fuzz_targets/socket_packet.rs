//! A stream of messages into a Socket.IO decoder, binary reassembly included.
//!
//! The input is split on 0xff (never part of UTF-8): the first piece is a text message, each later
//! piece a binary message, unless it starts with `T`, which makes it another text message. Every
//! complete packet must re-encode to messages that decode to the same packet.
#![no_main]

use bytes::Bytes;
use chatgate_codec::socket::{Decoder, Packet};
use chatgate_codec::{ByteStr, Limits};
use libfuzzer_sys::fuzz_target;

fn feed(decoder: &mut Decoder, piece: &[u8], first: bool) -> Option<Packet> {
    let text = if first { Some(piece) } else { piece.strip_prefix(b"T") };
    match text {
        Some(t) => {
            let t = ByteStr::from_utf8(Bytes::copy_from_slice(t)).ok()?;
            decoder.text(t).ok().flatten()
        }
        None => decoder.binary(Bytes::copy_from_slice(piece)).ok().flatten(),
    }
}

fn redecode(packet: &Packet, limits: Limits) -> Option<Packet> {
    let (text, attachments) = packet.encode();
    let mut decoder = Decoder::new(limits);
    let mut out = decoder.text(text).expect("re-encoded header decodes");
    for a in attachments {
        out = decoder.binary(a).expect("re-encoded attachment accepted");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_payload: 4096,
        max_attachments: 4,
        max_depth: 16,
    };
    let mut decoder = Decoder::new(limits);
    for (i, piece) in data.split(|&b| b == 0xff).enumerate() {
        if let Some(packet) = feed(&mut decoder, piece, i == 0) {
            assert_eq!(redecode(&packet, limits).as_ref(), Some(&packet));
        }
    }
});

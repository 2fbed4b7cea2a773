//! The frame decoder and the message codec: arbitrary bytes split into reads of every size.
//! Nothing may panic; a frame that decodes must re-encode to a frame that decodes to the same
//! message; buffered bytes never exceed what was fed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p::wire::{FrameDecoder, MAX_FRAME_LEN, decode_message, encode_message};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(split % 64) + 1;
    let mut dec = FrameDecoder::new();
    'feed: for piece in stream.chunks(step) {
        dec.extend(piece);
        assert!(dec.wanted() >= 1 && dec.wanted() <= MAX_FRAME_LEN + 4);
        loop {
            match dec.next_frame() {
                Ok(Some(body)) => {
                    assert!(body.len() <= MAX_FRAME_LEN);
                    if let Ok(msg) = decode_message(body) {
                        let again = encode_message(&msg);
                        assert_eq!(
                            decode_message(&again[4..]).as_ref(),
                            Ok(&msg),
                            "re-encoding changed the message"
                        );
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    // The whole input as one body, too.
    let _ = decode_message(stream);
});

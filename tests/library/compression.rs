//! The compression component on real codecs.

use campaign::components::compression::{
    BlockCodec, Codec, CompressionError, Lz4Format, train_dictionary,
};

/// Codec names, and `lz4_block` for LZ4 through the block API.
const CODECS: [&str; 6] = [
    "zstd:1",
    "zstd:19",
    "zstd_dict:3",
    "lz4",
    "lz4_block",
    "snappy",
];

/// Log-like text: compressible, with structure a dictionary can learn.
fn sample(seed: u32, lines: u32) -> Vec<u8> {
    (0..lines)
        .map(|i| {
            format!(
                "{{\"request\":{},\"tokens\":{},\"status\":\"ok\"}}\n",
                seed * 100_000 + i,
                (i * 7919) % 4096
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn codec(name: &str) -> BlockCodec {
    let dictionary =
        train_dictionary(&sample(9, 4000).chunks(512).collect::<Vec<_>>(), 16 * 1024).unwrap();
    let (name, format) = match name {
        "lz4_block" => ("lz4", Lz4Format::Block),
        other => (other, Lz4Format::Frame),
    };
    BlockCodec::new(name.parse::<Codec>().unwrap(), Some(&dictionary))
        .unwrap()
        .with_lz4_format(format)
}

#[test]
fn every_codec_round_trips_byte_for_byte() {
    let data = sample(1, 2000);
    for name in CODECS {
        let mut c = codec(name);
        let (mut packed, mut restored) = (Vec::new(), Vec::new());
        c.compress(&data, &mut packed).unwrap();
        assert!(
            packed.len() < data.len() / 2,
            "{name}: {} of {} bytes",
            packed.len(),
            data.len()
        );
        c.decompress(&packed, data.len(), &mut restored).unwrap();
        assert_eq!(restored, data, "{name}");
        // Empty and incompressible blocks too.
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for block in [&[][..], &noise[..]] {
            c.compress(block, &mut packed).unwrap();
            c.decompress(&packed, block.len(), &mut restored).unwrap();
            assert_eq!(restored, block, "{name}");
        }
    }
}

#[test]
fn a_corrupted_block_is_an_error_not_garbage() {
    let data = sample(2, 500);
    for name in CODECS {
        let mut c = codec(name);
        let mut packed = Vec::new();
        c.compress(&data, &mut packed).unwrap();
        let mut restored = Vec::new();
        let positions: Vec<usize> = (1..=16).map(|k| k * (packed.len() - 1) / 16).collect();
        let mut detected = 0;
        for &at in &positions {
            let mut bad = packed.clone();
            bad[at] ^= 0x20;
            match c.decompress(&bad, data.len(), &mut restored) {
                Err(CompressionError::Corrupt { .. }) => detected += 1,
                Err(other) => panic!("{name}: wrong error {other}"),
                // A flip can land in bits the decoder never reads (padding of
                // an entropy-coded stream): harmless only if the output is exact.
                Ok(()) => assert_eq!(restored, data, "{name}: flipped byte {at} produced garbage"),
            }
        }
        assert!(
            detected >= 14,
            "{name}: only {detected} of 16 flips detected"
        );
        let truncated = &packed[..packed.len() - 5];
        assert!(
            c.decompress(truncated, data.len(), &mut restored).is_err(),
            "{name}: truncation unnoticed"
        );
    }
}

#[test]
fn a_trained_dictionary_helps_small_blocks_of_the_same_kind() {
    let block = &sample(3, 8)[..];
    let (mut plain, mut with_dict) = (Vec::new(), Vec::new());
    codec("zstd:3").compress(block, &mut plain).unwrap();
    codec("zstd_dict:3")
        .compress(block, &mut with_dict)
        .unwrap();
    assert!(
        with_dict.len() < plain.len(),
        "dictionary {} vs plain {} bytes",
        with_dict.len(),
        plain.len()
    );
    let err = BlockCodec::new("zstd_dict:3".parse().unwrap(), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("dictionary"), "{err}");
}

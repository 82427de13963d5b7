//! Server-sent events (the WHATWG format) decoded from bytes as they
//! arrive, with bounded memory: a line, and the data of one event, may not
//! pass a limit, so a server that never ends a line cannot make the client
//! buffer without end. Only `data` fields matter to an OpenAI-compatible
//! stream; `event`, `id`, `retry` and comments are read and dropped.

/// One line of the stream, and the data of one event, at most this long.
/// A chunk of an OpenAI-compatible stream is a few hundred bytes (a few KiB
/// with log-probabilities); 1 MiB is beyond any real one.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("a line of the stream passed {limit} bytes without ending (the limit on one line)")]
    LineTooLong { limit: usize },
    #[error("an event's data passed {limit} bytes (the limit on one event)")]
    EventTooLarge { limit: usize },
    #[error("an event's data is not UTF-8 (byte {at} of the event)")]
    NotUtf8 { at: usize },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a stream fed in pieces of any size: the events are the same
/// however the bytes were split.
#[derive(Debug)]
pub struct SseDecoder {
    limit: usize,
    line: Vec<u8>,
    /// The data lines of the event being read, each followed by `\n`.
    data: Vec<u8>,
    /// The last piece ended with `\r`: a `\n` that starts the next one
    /// belongs to the same line ending.
    after_cr: bool,
    first_line: bool,
}

impl SseDecoder {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            data: Vec::new(),
            after_cr: false,
            first_line: true,
        }
    }

    /// Reads `bytes` and appends the data of every event they complete to
    /// `events`. After an error the decoder is not to be fed again.
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if std::mem::take(&mut self.after_cr) && rest[0] == b'\n' {
                rest = &rest[1..];
                continue;
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.extend_line(&rest[..end])?;
                    self.after_cr = rest[end] == b'\r';
                    rest = &rest[end + 1..];
                    self.end_line(events)?;
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        // `data: ` and the BOM come on top of an event's limit.
        if self.line.len() + bytes.len() > self.limit + 16 {
            return Err(SseError::LineTooLong { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, events: &mut Vec<String>) -> Result<(), SseError> {
        let mut line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.first_line) && line.starts_with(BOM) {
            line.drain(..BOM.len());
        }
        if line.is_empty() {
            return self.dispatch(events);
        }
        if line[0] == b':' {
            // A comment (servers send them to keep a connection alive).
            self.line = reuse(line);
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.data.len() + value.len() + 1 > self.limit + 1 {
                return Err(SseError::EventTooLarge { limit: self.limit });
            }
            self.data.extend_from_slice(value);
            self.data.push(b'\n');
        }
        self.line = reuse(line);
        Ok(())
    }

    /// A blank line ends an event; one without data is no event.
    fn dispatch(&mut self, events: &mut Vec<String>) -> Result<(), SseError> {
        if self.data.is_empty() {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        let text = String::from_utf8(data).map_err(|e| SseError::NotUtf8 {
            at: e.utf8_error().valid_up_to(),
        })?;
        events.push(text);
        Ok(())
    }
}

/// The line's buffer, emptied, for the next line.
fn reuse(mut line: Vec<u8>) -> Vec<u8> {
    line.clear();
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_in(pieces: &[&[u8]], limit: usize) -> (Vec<String>, Option<SseError>) {
        let mut decoder = SseDecoder::new(limit);
        let mut events = Vec::new();
        for piece in pieces {
            if let Err(e) = decoder.feed(piece, &mut events) {
                return (events, Some(e));
            }
        }
        (events, None)
    }

    #[test]
    fn events_follow_the_whatwg_rules() {
        let stream = b"\xEF\xBB\xBF: keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\nid: 3\ndata:two\ndata: lines\n\ndata\n\n\n\ndata: last without blank line";
        let (events, error) = decode_in(&[stream], 1024);
        assert_eq!(error, None);
        assert_eq!(events, ["{\"a\":1}", "two\nlines", ""]);
    }

    #[test]
    fn a_line_or_an_event_past_the_limit_is_refused_before_it_is_kept() {
        let (_, error) = decode_in(&[&[b'x'; 100]], 16);
        assert_eq!(error, Some(SseError::LineTooLong { limit: 16 }));
        let (events, error) = decode_in(&[b"data: 0123456789\n", b"data: 0123456789\n\n"], 16);
        assert!(events.is_empty());
        assert_eq!(error, Some(SseError::EventTooLarge { limit: 16 }));
        let (_, error) = decode_in(&[b"data: \xFF\xFE\n\n"], 16);
        assert_eq!(error, Some(SseError::NotUtf8 { at: 0 }));
    }

    fn splits(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for cut in cuts {
            pieces.push(bytes[from..cut].to_vec());
            from = cut;
        }
        pieces.push(bytes[from..].to_vec());
        pieces
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary bytes, split anywhere: no panic, the same events and
        /// error as in one piece, and nothing kept past the limit.
        #[test]
        fn any_bytes_split_anywhere_decode_alike_within_the_limit(
            bytes in proptest::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    2 => Just(b'\n'),
                    1 => Just(b'\r'),
                    1 => Just(b':'),
                ],
                0..600,
            ),
            prefix in prop_oneof![Just(&b""[..]), Just(&b"data: "[..]), Just(&b"data:"[..])],
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            limit in 1usize..80,
        ) {
            let bytes = [prefix, &bytes[..]].concat();
            let whole = decode_in(&[&bytes], limit);
            let pieces = splits(&bytes, &cuts);
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(&decode_in(&refs, limit), &whole);
            for event in &whole.0 {
                prop_assert!(event.len() <= limit);
            }
        }

        /// Events written with any line endings and comments between them,
        /// split anywhere, come back as written.
        #[test]
        fn written_events_come_back_whatever_the_line_endings(
            events in proptest::collection::vec("[^\r\n]{0,40}", 0..8),
            endings in proptest::collection::vec(
                prop_oneof![Just("\n"), Just("\r\n"), Just("\r")], 8),
            comments in proptest::collection::vec(any::<bool>(), 8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut stream = String::new();
            for (i, event) in events.iter().enumerate() {
                let end = endings[i];
                if comments[i] {
                    stream.push_str(&format!(": ping{end}"));
                }
                stream.push_str(&format!("data: {event}{end}{end}"));
            }
            let pieces = splits(stream.as_bytes(), &cuts);
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let (decoded, error) = decode_in(&refs, MAX_EVENT_BYTES);
            prop_assert_eq!(error, None);
            prop_assert_eq!(decoded, events);
        }
    }
}

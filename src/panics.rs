//! Panics become messages. One process-wide hook records each panic's
//! message and location for the thread it happened on, and prints nothing:
//! whoever catches it (a benchmark's worker loop, a thread's join, `main`)
//! turns it into a failure in the report or an error line. With
//! `RUST_BACKTRACE` set the standard report is printed too, for debugging.

use std::any::Any;
use std::cell::RefCell;
use std::panic;
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook once; later calls do nothing.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let standard = panic::take_hook();
        let verbose = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
        panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = payload_message(info.payload());
            let thread = std::thread::current()
                .name()
                .map(|n| format!(" in thread {n:?}"))
                .unwrap_or_default();
            LAST.with(|p| *p.borrow_mut() = Some(format!("panicked{thread}{location}: {message}")));
            if verbose {
                standard(info);
            }
        }));
    });
}

/// The message a panic carried, whatever its payload type.
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The last panic on this thread, with where it happened; taking it clears it.
pub fn take_last() -> Option<String> {
    LAST.with(|p| p.borrow_mut().take())
}

/// Describes a panic caught on this thread (`catch_unwind`): the recorded
/// message with its location, else the payload's message.
pub fn describe(payload: &(dyn Any + Send)) -> String {
    take_last().unwrap_or_else(|| format!("panicked: {}", payload_message(payload)))
}

/// Describes a panic that ended another thread (`JoinHandle::join`): that
/// thread's record is gone with it, so the payload's message is used.
pub fn describe_joined(what: &str, payload: &(dyn Any + Send)) -> String {
    format!("{what} panicked: {}", payload_message(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_a_message_with_its_location() {
        install_hook();
        let caught = panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        let text = describe(caught.as_ref());
        assert!(
            text.contains("boom 7") && text.contains("panics.rs"),
            "{text}"
        );
        // A panic on another thread: its message comes back with the join.
        let joined = std::thread::spawn(|| panic!("in a producer"))
            .join()
            .unwrap_err();
        assert_eq!(
            describe_joined("a producer", joined.as_ref()),
            "a producer panicked: in a producer"
        );
    }
}

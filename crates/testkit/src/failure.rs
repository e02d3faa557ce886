//! Why a test failed, said again after the logs its guards print while unwinding.
//!
//! A failing end-to-end test drops its servers during the unwind and each prints up to 64 KiB
//! of logs: the panic message, printed first, ends up far above them, and a CI report that keeps
//! only the head and the tail of the output loses it. [`remember_panics`] (called by every
//! [`crate::proc::Proc`] start) wraps the panic hook so the message is kept for the panicking
//! thread; [`panic_message`] gives it back to the guard printing its logs.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Keeps the message of the next panic on each thread (idempotent; the previous hook still
/// prints it as before).
pub fn remember_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_owned());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{what}{at}")));
            previous(info);
        }));
    });
}

/// The message of the panic this thread is unwinding from, if [`remember_panics`] saw it.
pub fn panic_message() -> Option<String> {
    if !std::thread::panicking() {
        return None;
    }
    MESSAGE.with(|m| m.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Guard(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send(panic_message());
        }
    }

    #[test]
    fn the_message_is_there_while_unwinding_and_only_then() {
        remember_panics();
        assert_eq!(panic_message(), None);
        let (tx, rx) = std::sync::mpsc::channel();
        let joined = std::thread::spawn(move || {
            let _g = Guard(tx);
            panic!("the NAT phone could not be called: 408");
        })
        .join();
        assert!(joined.is_err());
        let got = rx.recv().expect("the guard ran").expect("a message");
        assert!(
            got.starts_with("the NAT phone could not be called: 408 at "),
            "{got}"
        );
        assert!(got.contains("failure.rs"), "{got}");
    }
}

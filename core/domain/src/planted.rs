//! Bugs planted on purpose, so that the simulator (`spine-sim --plant`) can show it finds
//! them. Compiled only with the `planted-bugs` feature (the simulator's); without it every
//! switch here reads false and costs nothing. A planted bug is switched on for the calling
//! thread only, so tests that run beside a planted one on other threads are untouched.

#[cfg(feature = "planted-bugs")]
thread_local! {
    static TRAIL_LINKS_UNHASHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the audit chain leaves each record's trail link out of its hash, as version 1 of
/// the chain did: a forger could then relink a patient's trail ("who has seen my record")
/// without breaking a hash.
pub(crate) fn trail_links_unhashed() -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        TRAIL_LINKS_UNHASHED.get()
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        false
    }
}

/// Plants (or, with `false`, removes) the unhashed trail link on this thread: its chains are
/// written and verified without the trail link in the hash.
#[cfg(feature = "planted-bugs")]
pub fn plant_unhashed_trail_links(planted: bool) {
    TRAIL_LINKS_UNHASHED.set(planted);
}

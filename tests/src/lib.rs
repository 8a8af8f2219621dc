//! Helpers shared by the end-to-end and crash tests in `tests/tests/`.
